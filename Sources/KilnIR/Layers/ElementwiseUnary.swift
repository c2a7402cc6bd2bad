/// The operation of a `UnaryLayer`, with its parameters. One case per distinct formula; ONNX ops that are the
/// same formula with other constants (Selu, Elu, Celu) keep their own case so the text form reads naturally.
public enum UnaryOp: Sendable, Hashable, CustomStringConvertible, Codable {
    case abs, neg, exp, log, sqrt, reciprocal, floor, ceil, round, sign
    case sin, cos, tan, asin, acos, atan, sinh, cosh, tanh, asinh, acosh, atanh, erf
    case isNaN
    case isInf(negative: Bool, positive: Bool)
    /// Logical not of booleans.
    case not
    /// Bitwise complement of integers.
    case bitwiseNot
    case relu
    case leakyRelu(alpha: Float)
    case elu(alpha: Float)
    case selu(alpha: Float, gamma: Float)
    case celu(alpha: Float)
    case sigmoid
    case hardSigmoid(alpha: Float, beta: Float)
    /// x * hardSigmoid(x) with alpha 1/6, beta 0.5.
    case hardSwish
    case softplus, softsign
    /// tanh=false: the erf form; tanh=true: the tanh approximation.
    case gelu(tanh: Bool)
    case mish
    case thresholdedRelu(alpha: Float)
    case shrink(bias: Float, lambda: Float)

    /// The ops whose result is boolean.
    public var producesBool: Bool {
        switch self {
        case .isNaN, .isInf: true
        default: false
        }
    }

    /// The ops defined on integers (besides floating point).
    public var acceptsIntegers: Bool {
        switch self {
        case .abs, .neg, .sign, .relu, .bitwiseNot, .shrink: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .abs: "abs"
        case .neg: "neg"
        case .exp: "exp"
        case .log: "log"
        case .sqrt: "sqrt"
        case .reciprocal: "reciprocal"
        case .floor: "floor"
        case .ceil: "ceil"
        case .round: "round"
        case .sign: "sign"
        case .sin: "sin"
        case .cos: "cos"
        case .tan: "tan"
        case .asin: "asin"
        case .acos: "acos"
        case .atan: "atan"
        case .sinh: "sinh"
        case .cosh: "cosh"
        case .tanh: "tanh"
        case .asinh: "asinh"
        case .acosh: "acosh"
        case .atanh: "atanh"
        case .erf: "erf"
        case .isNaN: "isnan"
        case .isInf(let n, let p): "isinf negative=\(n ? 1 : 0) positive=\(p ? 1 : 0)"
        case .not: "not"
        case .bitwiseNot: "bitwise_not"
        case .relu: "relu"
        case .leakyRelu(let a): "leaky_relu alpha=\(a)"
        case .elu(let a): "elu alpha=\(a)"
        case .selu(let a, let g): "selu alpha=\(a) gamma=\(g)"
        case .celu(let a): "celu alpha=\(a)"
        case .sigmoid: "sigmoid"
        case .hardSigmoid(let a, let b): "hard_sigmoid alpha=\(a) beta=\(b)"
        case .hardSwish: "hard_swish"
        case .softplus: "softplus"
        case .softsign: "softsign"
        case .gelu(let t): t ? "gelu approximate=tanh" : "gelu"
        case .mish: "mish"
        case .thresholdedRelu(let a): "thresholded_relu alpha=\(a)"
        case .shrink(let b, let l): "shrink bias=\(b) lambda=\(l)"
        }
    }
}

/// One-input pointwise math and activations (`pointwise.unary`): ONNX's ~45 unary and activation operators.
public struct UnaryLayer: Layer {
    public static let kind = LayerKind("pointwise.unary")
    public var op: UnaryOp

    public init(_ op: UnaryOp) { self.op = op }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 1 else { throw KilnError.invalidModel("unary \(op) takes 1 input, got \(inputs.count)") }
        guard let t = inputs[0].tensorType else { return [nil] }
        try UnaryLayer.check(op, t.dtype)
        return [.tensor(TensorType(op.producesBool ? .bool : t.dtype, t.shape))]
    }

    /// Throws when `op` is not defined on `dtype`.
    public static func check(_ op: UnaryOp, _ dtype: DType) throws {
        let ok: Bool
        switch op {
        case .not: ok = dtype == .bool
        case .bitwiseNot: ok = dtype.isInteger
        default: ok = dtype.isFloatingPoint || (op.acceptsIntegers && dtype.isInteger)
        }
        guard ok else { throw KilnError.typeMismatch("\(op) is not defined on \(dtype.onnxName)") }
    }

    public var description: String { "op=\(op)" }
}

/// Clamps to [min, max] (`pointwise.clip`). Bounds come from the optional inputs 1 and 2 when given, else from
/// the constant parameters (older ONNX Clip had them as attributes); an absent bound does not clamp.
public struct ClipLayer: Layer {
    public static let kind = LayerKind("pointwise.clip")
    public var min: Double?
    public var max: Double?

    public init(min: Double? = nil, max: Double? = nil) {
        self.min = min
        self.max = max
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard (1...3).contains(inputs.count) else { throw KilnError.invalidModel("clip takes 1 to 3 inputs") }
        return [inputs[0].type]
    }

    public var description: String {
        var parts: [String] = []
        if let min { parts.append("min=\(min)") }
        if let max { parts.append("max=\(max)") }
        return parts.joined(separator: " ")
    }
}
