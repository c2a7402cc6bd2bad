/// Scaled dot-product attention with optional mask, causal/sliding-window masking, KV cache, grouped-query
/// heads and softcap (ONNX Attention, opsets 23-25). Inputs: Q, K, V, attn_mask, past_key, past_value,
/// nonpad_kv_seqlen. Outputs: Y, present_key, present_value, qk_matmul_output.
public struct AttentionLayer: Layer {
    public static let kind = LayerKind("attention")

    /// Which intermediate the fourth output exposes.
    public enum ScoreOutput: Int, Sendable, Hashable, Codable {
        /// The scaled Q·Kᵀ product (after softcap, when set).
        case product = 0
        case afterSoftcap = 1
        /// The product plus the attention bias (mask, causal, window).
        case withBias = 2
        /// The softmax probabilities.
        case afterSoftmax = 3
    }

    public var isCausal: Bool
    /// Heads of Q and of K/V; required for 3-D inputs ([batch, seq, heads * headSize]).
    public var qNumHeads: Int?
    public var kvNumHeads: Int?
    /// nil: 1/sqrt(head size).
    public var scale: Float?
    /// 0: none; otherwise scores become softcap * tanh(scores / softcap).
    public var softcap: Float
    public var scoreOutput: ScoreOutput
    /// Sliding window (opset 25): keys more than `leftWindow` before / `rightWindow` after the query's
    /// position are masked; -1 leaves that side open.
    public var leftWindow: Int
    public var rightWindow: Int

    public init(
        isCausal: Bool = false, qNumHeads: Int? = nil, kvNumHeads: Int? = nil, scale: Float? = nil,
        softcap: Float = 0, scoreOutput: ScoreOutput = .product, leftWindow: Int = -1, rightWindow: Int = -1
    ) {
        self.isCausal = isCausal
        self.qNumHeads = qNumHeads
        self.kvNumHeads = kvNumHeads
        self.scale = scale
        self.softcap = softcap
        self.scoreOutput = scoreOutput
        self.leftWindow = leftWindow
        self.rightWindow = rightWindow
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count >= 3, let q = inputs[0].tensorType, let qs = q.shape, let ks = inputs[1].tensorType?.shape,
            let vs = inputs[2].tensorType?.shape
        else {
            return [nil, nil, nil, nil]
        }
        guard qs.count == ks.count, qs.count == vs.count, qs.count == 3 || qs.count == 4 else {
            throw KilnError.shapeMismatch("Q, K and V must all be 3-D or all 4-D")
        }
        let dtype = q.dtype
        let pastLength: Dim? =
            inputs.count > 4 ? inputs[4].tensorType?.shape.flatMap { $0.count == 4 ? $0[2] : nil } : nil
        let hasPast = inputs.count > 4 && inputs[4].isPresent
        func add(_ a: Dim, _ b: Dim?) -> Dim {
            guard hasPast else { return a }
            if let x = a.value, let y = b?.value { return .value(x + y) }
            return .unknown
        }
        func divide(_ a: Dim, _ b: Int?) -> Dim {
            guard let x = a.value, let b, b > 0 else { return .unknown }
            return .value(x / b)
        }
        let batch = qs[0]
        let qHeads: Dim
        let kvHeads: Dim
        let qLen: Dim
        let kvLen: Dim
        let headK: Dim
        let headV: Dim
        if qs.count == 4 {
            (qHeads, qLen, kvHeads, kvLen, headK, headV) = (qs[1], qs[2], ks[1], ks[2], ks[3], vs[3])
        } else {
            qHeads = qNumHeads.map { .value($0) } ?? .unknown
            kvHeads = kvNumHeads.map { .value($0) } ?? .unknown
            (qLen, kvLen) = (qs[1], ks[1])
            headK = divide(ks[2], kvNumHeads)
            headV = divide(vs[2], kvNumHeads)
        }
        let total = add(kvLen, pastLength)
        let y: [Dim]
        if qs.count == 4 {
            y = [batch, qHeads, qLen, headV]
        } else if let h = qNumHeads, let v = headV.value {
            y = [batch, qLen, .value(h * v)]
        } else {
            y = [batch, qLen, .unknown]
        }
        return [
            .tensor(TensorType(dtype, y)),
            .tensor(TensorType(dtype, [batch, kvHeads, total, headK])),
            .tensor(TensorType(dtype, [batch, kvHeads, total, headV])),
            .tensor(TensorType(dtype, [batch, qHeads, qLen, total])),
        ]
    }

    public var description: String {
        var parts: [String] = []
        if isCausal { parts.append("causal") }
        if let qNumHeads { parts.append("qHeads=\(qNumHeads)") }
        if let kvNumHeads { parts.append("kvHeads=\(kvNumHeads)") }
        if let scale { parts.append("scale=\(scale)") }
        if softcap != 0 { parts.append("softcap=\(softcap)") }
        if scoreOutput != .product { parts.append("scoreOutput=\(scoreOutput.rawValue)") }
        if leftWindow >= 0 { parts.append("leftWindow=\(leftWindow)") }
        if rightWindow >= 0 { parts.append("rightWindow=\(rightWindow)") }
        return parts.joined(separator: ", ")
    }
}

/// Rotary position embedding (ONNX RotaryEmbedding). Inputs: X ([batch, heads, seq, head] or [batch, seq,
/// hidden]), cos_cache, sin_cache, optional position_ids.
public struct RotaryEmbeddingLayer: Layer {
    public static let kind = LayerKind("rotaryEmbedding")
    /// Rotate pairs (x0, x1), (x2, x3), ... instead of the two halves.
    public var interleaved: Bool
    /// Leading elements of each head that are rotated; 0 means all.
    public var rotaryDim: Int
    /// Heads of a 3-D input; 0 for 4-D inputs.
    public var numHeads: Int

    public init(interleaved: Bool, rotaryDim: Int, numHeads: Int) {
        self.interleaved = interleaved
        self.rotaryDim = rotaryDim
        self.numHeads = numHeads
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }

    public var description: String {
        var parts: [String] = []
        if interleaved { parts.append("interleaved") }
        if rotaryDim > 0 { parts.append("rotaryDim=\(rotaryDim)") }
        if numHeads > 0 { parts.append("heads=\(numHeads)") }
        return parts.joined(separator: ", ")
    }
}
