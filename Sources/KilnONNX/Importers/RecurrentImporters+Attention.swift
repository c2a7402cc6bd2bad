import KilnIR

/// Attention (opsets 23-25), LinearAttention, FlexAttention (ai.onnx.preview) and RotaryEmbedding, listed
/// in the recurrent family's table.
enum AttentionImporters {
    static let table: [OperatorImporter] = [
        .layer("Attention", since: 23) { c in
            let mode = try c.int("qk_matmul_output_mode", default: 0)
            guard let scoreOutput = AttentionLayer.ScoreOutput(rawValue: mode) else {
                throw c.invalid("qk_matmul_output_mode must be 0...3, is \(mode)")
            }
            let left = try c.int("left_window_size", default: -1)
            let right = try c.int("right_window_size", default: -1)
            guard left >= -1, right >= -1 else { throw c.invalid("window sizes must be -1 or non-negative") }
            return AttentionLayer(
                isCausal: try c.int("is_causal", default: 0) != 0, qNumHeads: try c.optionalInt("q_num_heads"),
                kvNumHeads: try c.optionalInt("kv_num_heads"),
                scale: c.has("scale") ? try c.float("scale") : nil, softcap: try c.float("softcap", default: 0),
                scoreOutput: scoreOutput, leftWindow: left, rightWindow: right)
        },
        .layer("LinearAttention", since: 27) { c in
            let rule = try c.string("update_rule", default: "gated_delta")
            guard let update = LinearAttentionLayer.Update(rawValue: rule) else {
                throw c.invalid("unknown update_rule '\(rule)'")
            }
            let scale = c.has("scale") ? try c.float("scale") : 0
            return LinearAttentionLayer(
                update: update, qNumHeads: try c.int("q_num_heads"), kvNumHeads: try c.int("kv_num_heads"),
                scale: scale == 0 ? nil : scale)
        },
        .layer("FlexAttention", domain: "ai.onnx.preview", since: 1) { c in
            let precision = try c.int("softmax_precision", default: 0)
            return FlexAttentionLayer(
                scale: c.has("scale") ? try c.float("scale") : nil,
                scoreMod: c.has("score_mod") ? try c.graph("score_mod") : nil,
                probMod: c.has("prob_mod") ? try c.graph("prob_mod") : nil,
                softmaxPrecision: precision == 0 ? nil : DType(rawValue: precision))
        },
        .layer("RotaryEmbedding", since: 23) { c in
            RotaryEmbeddingLayer(
                interleaved: try c.int("interleaved", default: 0) != 0,
                rotaryDim: try c.int("rotary_embedding_dim", default: 0), numHeads: try c.int("num_heads", default: 0))
        },
    ]
}
