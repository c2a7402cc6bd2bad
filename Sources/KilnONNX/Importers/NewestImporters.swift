import KilnIR

/// The newest ONNX operators (onnx 1.23, opsets 24-28): BitCast, SwiGLU, TensorScatter,
/// CausalConvWithState, LinearAttention and (ai.onnx.preview) FlexAttention, each onto one layer.
enum NewestImporters {
    static let table: [OperatorImporter] = [
        .layer("BitCast", since: 26) { c in
            let raw = try c.int("to")
            guard let to = DType(rawValue: raw), to.byteSize > 0, !subByte.contains(to) else {
                throw c.unsupported("BitCast to element type \(raw)")
            }
            return BitCastLayer(to: to)
        },
        .layer("SwiGLU", since: 28) { c in
            GatedActivationLayer(gate: .swish, alpha: try c.float("alpha", default: 1))
        },
        .layer("TensorScatter", since: 24) { c in
            let mode = try c.string("mode", default: "linear")
            guard mode == "linear" || mode == "circular" else {
                throw c.unsupported("TensorScatter mode '\(mode)'")
            }
            return TensorScatterLayer(axis: try c.int("axis", default: -2), circular: mode == "circular")
        },
        .layer("CausalConvWithState", since: 27) { c in
            let name = try c.string("activation", default: "none")
            switch name {
            case "none": return CausalConvWithStateLayer(activation: .none)
            case "silu", "swish": return CausalConvWithStateLayer(activation: .silu)
            default: throw c.unsupported("CausalConvWithState activation '\(name)'")
            }
        },
        .layer("LinearAttention", since: 27) { c in
            let ruleName = try c.string("update_rule", default: "gated_delta")
            guard let rule = LinearAttentionLayer.UpdateRule(rawValue: ruleName) else {
                throw c.unsupported("LinearAttention update_rule '\(ruleName)'")
            }
            let q = try c.int("q_num_heads")
            let kv = try c.int("kv_num_heads")
            guard q > 0, kv > 0, q % kv == 0 else {
                throw c.invalid("LinearAttention q_num_heads \(q) must be a positive multiple of kv_num_heads \(kv)")
            }
            guard c.hasInput(4) == rule.isGated else {
                throw c.invalid("LinearAttention update_rule '\(ruleName)' " + (rule.isGated ? "needs" : "forbids")
                    + " the decay input")
            }
            guard c.hasInput(5) == rule.isDelta else {
                throw c.invalid("LinearAttention update_rule '\(ruleName)' " + (rule.isDelta ? "needs" : "forbids")
                    + " the beta input")
            }
            return LinearAttentionLayer(
                queryHeads: q, keyValueHeads: kv, scale: try c.float("scale", default: 0), rule: rule)
        },
        .layer("FlexAttention", domain: "ai.onnx.preview", since: 1) { c in
            var precision: DType? = nil
            if let raw = try c.optionalInt("softmax_precision") {
                guard let dtype = DType(rawValue: raw), [.float32, .float64, .float16, .bfloat16].contains(dtype) else {
                    throw c.unsupported("FlexAttention softmax_precision \(raw)")
                }
                precision = dtype
            }
            return FlexAttentionLayer(
                scale: c.has("scale") ? try c.float("scale") : nil, softmaxPrecision: precision,
                scoreModifier: c.has("score_mod") ? try c.graph("score_mod") : nil,
                probabilityModifier: c.has("prob_mod") ? try c.graph("prob_mod") : nil)
        },
    ]

    /// Element types narrower than a byte, which BitCast cannot reinterpret element by element.
    private static let subByte: Set<DType> = [.int4, .uint4, .int2, .uint2, .float4e2m1]
}
