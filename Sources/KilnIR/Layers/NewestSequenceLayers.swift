/// Layers for the ONNX 1.23 state-space / linear-attention operators: CausalConvWithState and
/// LinearAttention. Both carry a recurrent state in and out so that decoding runs one step at a time.

/// Causal depthwise 1-D convolution that carries its last `k - 1` inputs as state (ONNX
/// CausalConvWithState). Inputs: `x` (B, C, L), `weight` (C, 1, k), optional `bias` (C), optional
/// `pastState` (B, C, k - 1). Outputs: `y` (B, C, L) and `presentState` (B, C, k - 1).
public struct CausalConvWithStateLayer: Layer {
    public static let kind = LayerKind("causalConvWithState")

    /// The activation applied to the convolution's output.
    public enum Activation: String, Sendable {
        case none
        /// `x * sigmoid(x)` (ONNX accepts the names silu and swish).
        case silu
    }

    public var activation: Activation

    public init(activation: Activation = .none) { self.activation = activation }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil, nil] }
        var state: ValueType? = nil
        if let shape = x.shape, shape.count == 3, inputs.count > 1, let w = inputs[1].tensorType?.shape,
            w.count == 3, let k = w[2].value
        {
            state = .tensor(TensorType(x.dtype, [shape[0], shape[1], .value(max(k - 1, 0))]))
        }
        return [.tensor(x), state]
    }

    public var description: String { "activation=\(activation.rawValue)" }
}

/// Recurrent linear attention over packed (B, T, H*D) inputs with a (B, Hkv, dk, dv) state (ONNX
/// LinearAttention). Inputs: `query`, `key`, `value`, optional `pastState`, optional `decay`, optional
/// `beta`. Outputs: `output` (B, T, Hq*dv) and `presentState`.
public struct LinearAttentionLayer: Layer {
    public static let kind = LayerKind("linearAttention")

    /// How the state absorbs each token.
    public enum UpdateRule: String, Sendable {
        /// `S += k ⊗ v`.
        case linear
        /// `S = exp(g) S + k ⊗ v`.
        case gated
        /// `S += β k ⊗ (v - Sᵀk)`.
        case delta
        /// `S = exp(g) S + β k ⊗ (v - exp(g) Sᵀk)`.
        case gatedDelta = "gated_delta"

        public var isGated: Bool { self == .gated || self == .gatedDelta }
        public var isDelta: Bool { self == .delta || self == .gatedDelta }
    }

    public var queryHeads: Int
    public var keyValueHeads: Int
    /// 0 means 1/sqrt(dk).
    public var scale: Float
    public var rule: UpdateRule

    public init(queryHeads: Int, keyValueHeads: Int, scale: Float = 0, rule: UpdateRule) {
        self.queryHeads = queryHeads
        self.keyValueHeads = keyValueHeads
        self.scale = scale
        self.rule = rule
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count >= 3, let q = inputs[0].tensorType else { return [nil, nil] }
        var output: ValueType? = nil
        var state: ValueType? = nil
        if let qs = q.shape, qs.count == 3, let vs = inputs[2].tensorType?.shape, vs.count == 3 {
            var last: Dim? = nil
            var dv: Int? = nil
            if let v = vs[2].value, v % keyValueHeads == 0 {
                dv = v / keyValueHeads
                last = .value(v / keyValueHeads * queryHeads)
            }
            if let last { output = .tensor(TensorType(q.dtype, [qs[0], qs[1], last])) }
            if let dv, let qd = qs[2].value, qd % queryHeads == 0 {
                let stateType = inputs.count > 3 ? inputs[3].tensorType?.dtype ?? q.dtype : q.dtype
                state = .tensor(
                    TensorType(stateType, [qs[0], .value(keyValueHeads), .value(qd / queryHeads), .value(dv)]))
            }
        }
        return [output, state]
    }

    public var description: String {
        "rule=\(rule.rawValue) heads=\(queryHeads)/\(keyValueHeads)" + (scale != 0 ? " scale=\(scale)" : "")
    }
}
