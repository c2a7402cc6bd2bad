import KilnIR
import KilnRuntime

/// Kernels for sequences and optionals: element lists of tensors held by `Value`.
enum SequenceKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(SequenceLayer.self) { layer, inputs, _ in [try sequenceOp(layer.op, inputs)] },
        cpuKernel(SplitToSequenceLayer.self) { layer, inputs, _ in [try splitToSequence(layer, inputs)] },
        cpuKernel(ConcatFromSequenceLayer.self) { layer, inputs, _ in
            let elements = try sequence(inputs, 0).map { try $0.asTensor() }
            guard let first = elements.first else {
                throw KilnError.invalidArgument("ConcatFromSequence needs a non-empty sequence")
            }
            let rank = first.rank + (layer.newAxis ? 1 : 0)
            let axis = try TensorSlicing.axis(layer.axis, rank: rank)
            let result =
                layer.newAxis
                ? try TensorSlicing.stack(elements, axis: axis) : try TensorSlicing.concat(elements, axis: axis)
            return [.tensor(result)]
        },
        (SequenceMapLayer.kind, sequenceMapFactory),
        cpuKernel(OptionalLayer.self) { layer, inputs, _ in [try optionalOp(layer.op, inputs)] },
    ]

    static func sequence(_ inputs: [Value?], _ index: Int) throws -> [Value] {
        guard index < inputs.count, let value = inputs[index] else {
            throw KilnError.invalidArgument("required input \(index) is missing")
        }
        return try withErrorContext("input \(index)") { try value.asSequence() }
    }

    private static func elementType(_ inputs: [Value?]) -> ValueType? {
        if case .sequence(let s, let e)? = inputs.first ?? nil { return e ?? s.first?.type }
        return nil
    }

    /// A position input checked against `0...limit` after adding `count` to negative values.
    private static func position(_ tensor: Tensor, count: Int, limit: Int) throws -> Int {
        let raw = try TensorSlicing.scalarInt(tensor, "position")
        let p = raw < 0 ? raw + count : raw
        guard p >= 0, p <= limit else {
            throw KilnError.invalidArgument("position \(raw) is out of range for a sequence of \(count)")
        }
        return p
    }

    static func sequenceOp(_ op: SequenceOp, _ inputs: [Value?]) throws -> Value {
        switch op {
        case .construct:
            let elements = try inputs.indices.map { i -> Value in .tensor(try inputs.tensor(i)) }
            return .sequence(elements, element: elements.first?.type)
        case .empty(let dtype):
            return .sequence([], element: .tensor(TensorType(dtype, nil)))
        case .at:
            let s = try sequence(inputs, 0)
            guard !s.isEmpty else { throw KilnError.invalidArgument("SequenceAt on an empty sequence") }
            return s[try position(inputs.tensor(1), count: s.count, limit: s.count - 1)]
        case .insert:
            var s = try sequence(inputs, 0)
            let value = Value.tensor(try inputs.tensor(1))
            let p = try inputs.optionalTensor(2).map { try position($0, count: s.count, limit: s.count) } ?? s.count
            s.insert(value, at: p)
            return .sequence(s, element: elementType(inputs) ?? value.type)
        case .erase:
            var s = try sequence(inputs, 0)
            guard !s.isEmpty else { throw KilnError.invalidArgument("SequenceErase on an empty sequence") }
            let p = try inputs.optionalTensor(1).map { try position($0, count: s.count, limit: s.count - 1) }
            s.remove(at: p ?? s.count - 1)
            return .sequence(s, element: elementType(inputs))
        case .length:
            return .tensor(Tensor(scalar: Int64(try sequence(inputs, 0).count)))
        }
    }

    static func splitToSequence(_ layer: SplitToSequenceLayer, _ inputs: [Value?]) throws -> Value {
        let input = try inputs.tensor(0)
        let axis = try TensorSlicing.axis(layer.axis, rank: input.rank)
        let dim = input.shape[axis]
        var pieces: [Tensor] = []
        if let split = try inputs.optionalTensor(1) {
            var sizes: [Int]
            if split.rank == 0 {
                let size = try split.scalarInt()
                guard size > 0 else { throw KilnError.invalidArgument("split size \(size) must be positive") }
                sizes = Array(repeating: size, count: dim / size)
                if dim % size != 0 { sizes.append(dim % size) }
            } else {
                sizes = try split.intValues()
                guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == dim else {
                    throw KilnError.invalidArgument("split sizes \(sizes) do not add up to dimension \(dim)")
                }
            }
            var start = 0
            for size in sizes {
                pieces.append(try TensorSlicing.slice(input, axis: axis, start: start, length: size))
                start += size
            }
        } else {
            for i in 0..<dim {
                pieces.append(
                    try TensorSlicing.slice(input, axis: axis, start: i, length: 1, dropAxis: !layer.keepDims))
            }
        }
        var elementShape = input.type
        elementShape.shape = nil
        return .sequence(pieces.map { .tensor($0) }, element: .tensor(elementShape))
    }

    static func optionalOp(_ op: OptionalOp, _ inputs: [Value?]) throws -> Value {
        let input = inputs.first ?? nil
        switch op {
        case .wrap(let type):
            if case .optional = input { return input ?? .optional(nil, element: type) }
            return .optional(input, element: type ?? input?.type)
        case .hasElement:
            let has: Bool
            switch input {
            case nil: has = false
            case .optional(let v, _)?: has = v != nil
            default: has = true
            }
            return .tensor(Tensor(scalar: has))
        case .getElement:
            switch input {
            case nil: throw KilnError.invalidArgument("OptionalGetElement needs an input")
            case .optional(let v, _)?:
                guard let v else { throw KilnError.invalidArgument("OptionalGetElement on an empty optional") }
                return v
            case let v?: return v
            }
        }
    }

    static let sequenceMapFactory: CPUKernelFactory = { layer, compiler in
        guard let map = layer as? SequenceMapLayer else {
            throw KilnError.runtime("sequence.map kernel got \(type(of: layer))")
        }
        let body = try compiler.compile(map.body)
        let outputTypes = map.body.outputs.map(\.type)
        return ClosureKernel { inputs, context in
            let count = try sequence(inputs, 0).count
            var results = [[Value]](repeating: [], count: outputTypes.count)
            for i in 0..<count {
                let args = try inputs.enumerated().map { index, value -> Value in
                    guard let value else { throw KilnError.invalidArgument("input \(index) is missing") }
                    guard case .sequence(let s, _) = value else { return value }
                    guard s.count == count else {
                        throw KilnError.shapeMismatch("input \(index) has \(s.count) elements, input 0 has \(count)")
                    }
                    return s[i]
                }
                let outs = try withErrorContext("element \(i)") { try body.run(args, outer: context.scope) }
                guard outs.count == results.count else {
                    throw KilnError.runtime("SequenceMap body returned \(outs.count) values")
                }
                for k in outs.indices { results[k].append(outs[k]) }
            }
            return zip(results, outputTypes).map { .sequence($0, element: $1) }
        }
    }
}
