extension Graph {
    /// Runs every layer's type inference in order and records the result in `valueTypes`. Declared output
    /// types are kept where inference knows less. Errors name the node.
    public mutating func inferTypes(outerTypes: [String: ValueType] = [:]) throws {
        var known = outerTypes
        for input in inputs { if let t = input.type { known[input.name] = t } }
        // The values of shape computations, symbolic where they come from symbolic shapes (`ShapeValues`).
        var shapeValues: [String: [Dim]] = [:]
        for (name, tensor) in initializers {
            known[name] = .tensor(tensor.type)
            shapeValues[name] = ShapeValues.constant(tensor)
        }
        for (index, node) in nodes.enumerated() {
            let inputs = node.inputs.map { name -> LayerInput in
                guard !name.isEmpty else { return .absent }
                return LayerInput(
                    type: known[name] ?? valueTypes[name], constant: initializers[name], shapeValue: shapeValues[name])
            }
            let types = try withErrorContext("node \(index) '\(node.name)' (\(node.kind))") {
                let types = try node.layer.inferTypes(inputs)
                guard types.count >= node.outputs.count || types.isEmpty else {
                    throw KilnError.invalidModel("layer infers \(types.count) outputs, node has \(node.outputs.count)")
                }
                return types
            }
            if let output = node.outputs.first, !output.isEmpty, let value = ShapeValues.output(of: node.layer, inputs)
            {
                shapeValues[output] = value
            }
            for (i, output) in node.outputs.enumerated() where !output.isEmpty {
                if i < types.count, let t = types[i] {
                    known[output] = t
                    valueTypes[output] = t
                } else if let declared = valueTypes[output] {
                    known[output] = declared
                }
            }
        }
        for i in outputs.indices where outputs[i].type == nil {
            outputs[i].type = known[outputs[i].name]
        }
    }
}
