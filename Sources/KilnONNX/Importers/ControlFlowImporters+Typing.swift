import KilnIR

extension ImportContext {
    /// Imports graph attribute `name` after giving its untyped inputs the element types the caller knows
    /// (exporters often leave body inputs untyped, and importers of body nodes such as CastLike need them).
    /// Only inputs without any declared type are touched; shapes stay unknown.
    func graph(_ name: String, inputTypes: [DType?]) throws -> Graph {
        guard case .graph(var proto)? = attribute(name) else { return try graph(name) }
        for (i, dtype) in inputTypes.enumerated() where i < proto.input.count && !proto.input[i].hasType {
            guard let dtype else { continue }
            var tensor = Onnx_TypeProto.Tensor()
            tensor.elemType = Int32(dtype.rawValue)
            proto.input[i].type.tensorType = tensor
        }
        return try withErrorContext("attribute '\(name)'") { try builder.importSubgraph(proto) }
    }

    /// Element types of tensor inputs and of the elements of sequence inputs.
    func inputElementDTypes() -> [DType?] {
        // The builder infers each node's output types as it is emitted, so earlier outputs are typed here.
        node.inputs.indices.map { inputType($0) }.map { type in
            switch type {
            case .tensor(let t)?: t.dtype
            case .sequence(let element)?: element?.tensorType?.dtype
            default: nil
            }
        }
    }
}
