/// A runtime value on a graph edge: a tensor, a sequence of values, or an optional value.
public indirect enum Value: Sendable, CustomStringConvertible {
    case tensor(Tensor)
    case sequence([Value], element: ValueType?)
    case optional(Value?, element: ValueType?)

    /// The tensor inside, or an error naming what was found instead.
    public func asTensor() throws -> Tensor {
        if case .tensor(let t) = self { return t }
        throw KilnError.typeMismatch("expected a tensor, got \(kindName)")
    }

    public func asSequence() throws -> [Value] {
        if case .sequence(let s, _) = self { return s }
        throw KilnError.typeMismatch("expected a sequence, got \(kindName)")
    }

    public var kindName: String {
        switch self {
        case .tensor: "tensor"
        case .sequence: "sequence"
        case .optional: "optional"
        }
    }

    /// The static type this value has.
    public var type: ValueType {
        switch self {
        case .tensor(let t): .tensor(t.type)
        case .sequence(let s, let e): .sequence(e ?? s.first?.type)
        case .optional(let v, let e): .optional(e ?? v?.type)
        }
    }

    public var description: String { type.description }
}
