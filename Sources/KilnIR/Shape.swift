/// One dimension of a tensor type: a known size, a named symbol (`batch`), or unknown.
public enum Dim: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    case value(Int)
    case symbol(String)
    case unknown

    public init(integerLiteral value: Int) { self = .value(value) }

    public var value: Int? {
        if case .value(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .value(let v): "\(v)"
        case .symbol(let s): s
        case .unknown: "?"
        }
    }
}

/// The static type of a tensor: element type and shape. `shape == nil` means the rank is unknown.
public struct TensorType: Sendable, Hashable, Codable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Dim]?

    public init(_ dtype: DType, _ shape: [Dim]?) {
        self.dtype = dtype
        self.shape = shape
    }

    public init(_ dtype: DType, dims: [Int]) {
        self.init(dtype, dims.map { .value($0) })
    }

    public var rank: Int? { shape?.count }

    /// All dimensions, when every one is known.
    public var concreteShape: [Int]? {
        guard let shape else { return nil }
        var dims: [Int] = []
        dims.reserveCapacity(shape.count)
        for d in shape {
            guard let v = d.value else { return nil }
            dims.append(v)
        }
        return dims
    }

    public var description: String {
        guard let shape else { return "\(dtype)[*]" }
        return "\(dtype)[\(shape.map(\.description).joined(separator: ","))]"
    }
}

/// The static type of any value that flows along a graph edge: ONNX has tensors, sequences of tensors,
/// optionals and (in ai.onnx.ml) maps.
public indirect enum ValueType: Sendable, Hashable, Codable, CustomStringConvertible {
    case tensor(TensorType)
    case sequence(ValueType?)
    case optional(ValueType?)
    case map(key: DType, value: ValueType?)

    public var tensorType: TensorType? {
        if case .tensor(let t) = self { return t }
        return nil
    }

    public var description: String {
        switch self {
        case .tensor(let t): t.description
        case .sequence(let e): "seq<\(e.map(\.description) ?? "?")>"
        case .optional(let e): "opt<\(e.map(\.description) ?? "?")>"
        case .map(let k, let v): "map<\(k),\(v.map(\.description) ?? "?")>"
        }
    }
}
