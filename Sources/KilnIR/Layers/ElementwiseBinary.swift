/// The operation of a `BinaryLayer`.
public enum BinaryOp: Sendable, Hashable, CustomStringConvertible, Codable {
    case add, sub, mul
    /// Integer division truncates toward zero.
    case div
    /// The result has the first input's dtype; the exponent may be of another numeric dtype.
    case pow
    /// fmod=true: C fmod (sign of the dividend); false: Python/numpy mod (sign of the divisor).
    case mod(fmod: Bool)
    case max, min
    /// x where x >= 0, slope * x elsewhere (ONNX PRelu).
    case prelu
    /// Shifts of the bit pattern; counts outside [0, bit width) shift everything out.
    case shiftLeft, shiftRight
    /// Logical on booleans, bitwise on integers.
    case and, or, xor
    case equal, less, greater, lessOrEqual, greaterOrEqual

    public var isComparison: Bool {
        switch self {
        case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .add: "add"
        case .sub: "sub"
        case .mul: "mul"
        case .div: "div"
        case .pow: "pow"
        case .mod(let f): f ? "fmod" : "mod"
        case .max: "max"
        case .min: "min"
        case .prelu: "prelu"
        case .shiftLeft: "shl"
        case .shiftRight: "shr"
        case .and: "and"
        case .or: "or"
        case .xor: "xor"
        case .equal: "eq"
        case .less: "lt"
        case .greater: "gt"
        case .lessOrEqual: "le"
        case .greaterOrEqual: "ge"
        }
    }
}

/// Two-input pointwise arithmetic, logic and comparison with numpy broadcasting (`pointwise.binary`).
public struct BinaryLayer: Layer {
    public static let kind = LayerKind("pointwise.binary")
    public var op: BinaryOp

    public init(_ op: BinaryOp) { self.op = op }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 2 else {
            throw KilnError.invalidModel("binary \(op) takes 2 inputs, got \(inputs.count)")
        }
        guard let a = inputs[0].tensorType, let b = inputs[1].tensorType else { return [nil] }
        if op != .pow && a.dtype != b.dtype {
            throw KilnError.typeMismatch("\(op) of \(a.dtype.onnxName) and \(b.dtype.onnxName)")
        }
        let dtype: DType = op.isComparison ? .bool : a.dtype
        guard let sa = a.shape, let sb = b.shape else { return [.tensor(TensorType(dtype, nil))] }
        return [.tensor(TensorType(dtype, try Broadcast.dims(sa, sb)))]
    }

    public var description: String { "op=\(op)" }
}

/// The reduction of a `VariadicLayer`.
public enum VariadicOp: String, Sendable, Hashable, Codable {
    case sum, mean, max, min
}

/// N-input pointwise sum, mean, max or min with numpy broadcasting over all inputs (`pointwise.variadic`).
public struct VariadicLayer: Layer {
    public static let kind = LayerKind("pointwise.variadic")
    public var op: VariadicOp

    public init(_ op: VariadicOp) { self.op = op }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard !inputs.isEmpty else { throw KilnError.invalidModel("\(op) needs at least one input") }
        let types = inputs.map(\.tensorType)
        guard let first = types[0] else { return [nil] }
        var dims: [Dim]? = first.shape
        for t in types.dropFirst() {
            guard let t else { return [nil] }
            guard t.dtype == first.dtype else {
                throw KilnError.typeMismatch("\(op) of \(first.dtype.onnxName) and \(t.dtype.onnxName)")
            }
            if let d = dims, let s = t.shape { dims = try Broadcast.dims(d, s) } else { dims = nil }
        }
        return [.tensor(TensorType(first.dtype, dims))]
    }

    public var description: String { "op=\(op.rawValue)" }
}

/// Picks from the second or third input by a boolean condition, all three broadcast together (`select`,
/// ONNX Where).
public struct SelectLayer: Layer {
    public static let kind = LayerKind("select")

    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 3 else { throw KilnError.invalidModel("select takes 3 inputs, got \(inputs.count)") }
        guard let c = inputs[0].tensorType, let x = inputs[1].tensorType, let y = inputs[2].tensorType else {
            return [nil]
        }
        guard c.dtype == .bool else { throw KilnError.typeMismatch("select condition is \(c.dtype.onnxName)") }
        guard x.dtype == y.dtype else {
            throw KilnError.typeMismatch("select of \(x.dtype.onnxName) and \(y.dtype.onnxName)")
        }
        guard let sc = c.shape, let sx = x.shape, let sy = y.shape else { return [.tensor(TensorType(x.dtype, nil))] }
        return [.tensor(TensorType(x.dtype, try Broadcast.dims(Broadcast.dims(sc, sx), sy)))]
    }
}
