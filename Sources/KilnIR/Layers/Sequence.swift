/// The simple operations on sequences of tensors.
public enum SequenceOp: Sendable, Hashable, CustomStringConvertible, Codable {
    /// A sequence of all inputs (which share one dtype).
    case construct
    /// An empty sequence whose elements would have this dtype.
    case empty(DType)
    /// The element at a (possibly negative) position.
    case at
    /// Inserts a tensor at a position (default: the end).
    case insert
    /// Removes the element at a position (default: the last).
    case erase
    /// The number of elements, as an int64 scalar.
    case length

    public var description: String {
        switch self {
        case .construct: "construct"
        case .empty(let d): "empty, dtype=\(d)"
        case .at: "at"
        case .insert: "insert"
        case .erase: "erase"
        case .length: "length"
        }
    }
}

/// SequenceConstruct, SequenceEmpty, SequenceAt, SequenceInsert, SequenceErase, SequenceLength.
public struct SequenceLayer: Layer {
    public static let kind = LayerKind("sequence")
    public var op: SequenceOp

    public init(op: SequenceOp) { self.op = op }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        switch op {
        case .construct:
            return [.sequence(inputs.compactMap(\.type).reduce(nil) { ControlFlowTypes.merge($0, $1) })]
        case .empty(let dtype): return [.sequence(.tensor(TensorType(dtype, nil)))]
        case .at:
            if case .sequence(let e)? = inputs.first?.type { return [e] }
            return [nil]
        case .insert:
            guard case .sequence(let e)? = inputs.first?.type else { return [inputs.first?.type] }
            return [.sequence(ControlFlowTypes.merge(e, inputs.count > 1 ? inputs[1].type : nil))]
        case .erase: return [inputs.first?.type]
        case .length: return [.tensor(TensorType(.int64, []))]
        }
    }

    public var description: String { "op=\(op)" }
}

/// Splits a tensor along an axis into a sequence (ONNX SplitToSequence). Split sizes come from the optional
/// second input; without it every element has size 1 and `keepDims` decides whether the axis stays.
public struct SplitToSequenceLayer: Layer {
    public static let kind = LayerKind("sequence.split")
    public var axis: Int
    public var keepDims: Bool

    public init(axis: Int, keepDims: Bool) {
        self.axis = axis
        self.keepDims = keepDims
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let t = inputs.first?.tensorType else { return [.sequence(nil)] }
        guard var shape = t.shape else { return [.sequence(.tensor(TensorType(t.dtype, nil)))] }
        let a = axis < 0 ? axis + shape.count : axis
        guard a >= 0, a < shape.count else {
            throw KilnError.invalidModel("axis \(axis) is out of range for rank \(shape.count)")
        }
        let splitGiven = inputs.count > 1 && inputs[1].isPresent
        if !splitGiven && !keepDims {
            shape.remove(at: a)
        } else if splitGiven {
            if let c = inputs[1].constant, c.rank == 0, let s = try? c.scalarInt(), s > 0, let d = shape[a].value,
                d % s == 0
            {
                shape[a] = .value(s)
            } else {
                shape[a] = .unknown
            }
        } else {
            shape[a] = 1
        }
        return [.sequence(.tensor(TensorType(t.dtype, shape)))]
    }

    public var description: String { "axis=\(axis)\(keepDims ? "" : ", keepDims=false")" }
}

/// Concatenates (or, with `newAxis`, stacks) the tensors of a sequence (ONNX ConcatFromSequence).
public struct ConcatFromSequenceLayer: Layer {
    public static let kind = LayerKind("sequence.concat")
    public var axis: Int
    public var newAxis: Bool

    public init(axis: Int, newAxis: Bool) {
        self.axis = axis
        self.newAxis = newAxis
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard case .sequence(let e)? = inputs.first?.type, let t = e?.tensorType else { return [nil] }
        guard var shape = t.shape else { return [.tensor(TensorType(t.dtype, nil))] }
        let rank = shape.count + (newAxis ? 1 : 0)
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else { throw KilnError.invalidModel("axis \(axis) is out of range for rank \(rank)") }
        if newAxis { shape.insert(.unknown, at: a) } else { shape[a] = .unknown }
        return [.tensor(TensorType(t.dtype, shape))]
    }

    public var description: String { "axis=\(axis)\(newAxis ? ", newAxis" : "")" }
}

/// Applies a body to each element of one or more sequences (ONNX SequenceMap). Input 0 is a sequence;
/// further inputs are sequences of the same length (taken element-wise) or tensors (passed whole).
public struct SequenceMapLayer: Layer {
    public static let kind = LayerKind("sequence.map")
    public var body: Graph

    public init(body: Graph) { self.body = body }

    public var subgraphs: [Graph] { [body] }

    public func replacingSubgraphs(_ graphs: [Graph]) -> SequenceMapLayer {
        guard graphs.count == 1 else { return self }
        return SequenceMapLayer(body: graphs[0])
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        body.outputs.map { .sequence($0.type) }
    }
}

/// The operations on optional values.
public enum OptionalOp: Sendable, Hashable, CustomStringConvertible, Codable {
    /// Wraps the input (or, without input, makes an empty optional of this element type).
    case wrap(ValueType?)
    /// Whether the input holds a value (false for an absent input).
    case hasElement
    /// The value inside; a plain tensor or sequence passes through.
    case getElement

    public var description: String {
        switch self {
        case .wrap(let t): t.map { "wrap, type=\($0)" } ?? "wrap"
        case .hasElement: "hasElement"
        case .getElement: "getElement"
        }
    }
}

/// Optional, OptionalHasElement, OptionalGetElement.
public struct OptionalLayer: Layer {
    public static let kind = LayerKind("optional")
    public var op: OptionalOp

    public init(op: OptionalOp) { self.op = op }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let input = inputs.first.flatMap { $0.isPresent ? $0.type : nil }
        switch op {
        case .wrap(let t): return [.optional(ControlFlowTypes.merge(t, input))]
        case .hasElement: return [.tensor(TensorType(.bool, []))]
        case .getElement:
            if case .optional(let e)? = input { return [e] }
            return [input]
        }
    }

    public var description: String { "op=\(op)" }
}
