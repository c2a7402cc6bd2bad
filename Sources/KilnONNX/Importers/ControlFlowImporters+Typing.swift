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

    /// The static types of the node's inputs. The builder knows only declared types (graph inputs,
    /// initializers, value_info), so the types of earlier nodes' outputs are inferred here over the nodes
    /// emitted so far.
    func inferredInputTypes() -> [ValueType?] {
        var outer: [String: ValueType] = [:]
        var chain: [GraphBuilder] = []
        var current: GraphBuilder? = builder
        while let b = current {
            chain.append(b)
            current = b.parent
        }
        for b in chain.dropFirst().reversed() {
            for (name, type) in b.valueTypes { outer[name] = type }
            for (name, tensor) in b.initializers { outer[name] = .tensor(tensor.type) }
        }
        var partial = Graph(
            name: "partial", initializers: builder.initializers, nodes: builder.nodes, valueTypes: builder.valueTypes)
        // A node whose inference fails leaves later types unknown; the body import then works with less.
        try? partial.inferTypes(outerTypes: outer)
        return node.inputs.map { name in
            guard !name.isEmpty else { return nil }
            return partial.type(of: name) ?? outer[name] ?? builder.type(of: name)
        }
    }

    /// Element types of tensor inputs and of the elements of sequence inputs.
    func inputElementDTypes() -> [DType?] {
        inferredInputTypes().map { type in
            switch type {
            case .tensor(let t)?: t.dtype
            case .sequence(let element)?: element?.tensorType?.dtype
            default: nil
            }
        }
    }
}
