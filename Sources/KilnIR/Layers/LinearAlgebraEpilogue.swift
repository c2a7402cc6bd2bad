/// The activation a convolution or matMul applies to its result before writing it out.
public enum EpilogueActivation: Sendable, Hashable, CustomStringConvertible, Codable {
    case relu
    /// Clamp to [min, max] (ReLU6 is `clip(0, 6)`); nil bounds do not clamp.
    case clip(min: Float?, max: Float?)
    case leakyRelu(alpha: Float)
    case sigmoid
    case tanh
    /// GELU, exact (erf) or the tanh approximation.
    case gelu(tanh: Bool)
    /// SiLU / swish: `x * sigmoid(x)`.
    case silu

    public var description: String {
        switch self {
        case .relu: "relu"
        case .clip(let lo, let hi): "clip(\(lo.map { "\($0)" } ?? "-"),\(hi.map { "\($0)" } ?? "-"))"
        case .leakyRelu(let a): "leaky_relu(\(a))"
        case .sigmoid: "sigmoid"
        case .tanh: "tanh"
        case .gelu(let t): t ? "gelu_tanh" : "gelu"
        case .silu: "silu"
        }
    }
}

/// Work a convolution or matMul does on each output tile while it is still in cache, in this order: the bias
/// (the layer's own bias input), the residual add, the activation. The optimizer's epilogue fusion fills it
/// in; an empty epilogue is the plain layer.
///
/// - convolution: the residual is input 3, a tensor of the output's shape.
/// - matMul: a bias or a residual becomes the C input (beta * C); when C is taken (a bias), a residual of the
///   output's shape is input 3, added after beta * C.
public struct Epilogue: Sendable, Hashable, CustomStringConvertible, Codable {
    public var residual: Bool
    public var activation: EpilogueActivation?

    public init(residual: Bool = false, activation: EpilogueActivation? = nil) {
        self.residual = residual
        self.activation = activation
    }

    public var isEmpty: Bool { !residual && activation == nil }

    /// `residual+relu`; empty for the plain layer.
    public var description: String {
        ((residual ? ["residual"] : []) + (activation.map { ["\($0)"] } ?? [])).joined(separator: "+")
    }
}
