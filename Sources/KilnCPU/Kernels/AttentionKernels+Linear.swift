import Foundation
import KilnIR
import KilnRuntime

/// LinearAttention: a per-(batch, kv head) state matrix [dk, dv] updated step by step, read by each query
/// head of the group. Computes in Float, as the reference does.
enum LinearAttentionKernel {
    static func run(_ layer: LinearAttentionLayer, _ inputs: [Value?]) throws -> [Value] {
        let qt = try inputs.tensor(0)
        let qh = layer.qNumHeads
        let kvh = layer.kvNumHeads
        guard qh > 0, kvh > 0, qh % kvh == 0 else {
            throw KilnError.invalidModel("q_num_heads \(qh) must be a positive multiple of kv_num_heads \(kvh)")
        }
        let q = try AttentionHeads(qt, heads: qh, "query")
        let k = try AttentionHeads(inputs.tensor(1), heads: kvh, "key")
        let v = try AttentionHeads(inputs.tensor(2), heads: kvh, "value")
        guard qt.rank == 3, k.batch == q.batch, v.batch == q.batch, k.length == q.length, v.length == q.length,
            k.dim == q.dim
        else {
            throw KilnError.shapeMismatch("query, key and value must be [batch, seq, heads * dim] with matching sizes")
        }
        let (batch, steps, dk, dv) = (q.batch, q.length, q.dim, v.dim)
        let stateCount = batch * kvh * dk * dv
        var state = [Float](repeating: 0, count: stateCount)
        var stateType = qt.dtype
        if let past = try inputs.optionalTensor(3) {
            guard past.shape == [batch, kvh, dk, dv] else {
                throw KilnError.shapeMismatch("past_state has shape \(past.shape), expected \([batch, kvh, dk, dv])")
            }
            state = try QuantValues.floats(past)
            stateType = past.dtype
        }
        let decay = try inputs.optionalTensor(4)
        let beta = try inputs.optionalTensor(5)
        guard (decay != nil) == layer.update.gated, (beta != nil) == layer.update.delta else {
            throw KilnError.invalidArgument("update rule \(layer.update.rawValue) does not match the decay/beta inputs")
        }
        // decay: [batch, seq, kvHeads] (one gate per head) or [batch, seq, kvHeads * dk] (one per key row).
        var decayValues: [Float] = []
        var decayWidth = 0
        if let decay {
            guard decay.rank == 3, decay.shape[0] == batch, decay.shape[1] == steps,
                decay.shape[2] == kvh || decay.shape[2] == kvh * dk
            else { throw KilnError.shapeMismatch("decay of shape \(decay.shape) does not fit") }
            decayValues = try QuantValues.floats(decay)
            decayWidth = decay.shape[2]
        }
        var betaValues: [Float] = []
        var betaWidth = 0
        if let beta {
            guard beta.rank == 3, beta.shape[0] == batch, beta.shape[1] == steps,
                beta.shape[2] == kvh || beta.shape[2] == 1
            else { throw KilnError.shapeMismatch("beta of shape \(beta.shape) does not fit") }
            betaValues = try QuantValues.floats(beta)
            betaWidth = beta.shape[2]
        }
        let scale = layer.scale.flatMap { $0 == 0 ? nil : $0 } ?? 1 / Float(dk).squareRoot()
        let group = qh / kvh
        var output = [Float](repeating: 0, count: batch * steps * qh * dv)
        var update = [Float](repeating: 0, count: dv)
        for b in 0..<batch {
            for t in 0..<steps {
                for h in 0..<kvh {
                    let base = (b * kvh + h) * dk * dv
                    if !decayValues.isEmpty {
                        for d in 0..<dk {
                            let index = decayWidth == kvh ? h : h * dk + d
                            let factor = expf(decayValues[(b * steps + t) * decayWidth + index])
                            for m in 0..<dv { state[base + d * dv + m] *= factor }
                        }
                    }
                    let kBase = ((b * kvh + h) * steps + t) * dk
                    let vBase = ((b * kvh + h) * steps + t) * dv
                    for m in 0..<dv { update[m] = v.data[vBase + m] }
                    if !betaValues.isEmpty {
                        let bt = betaValues[(b * steps + t) * betaWidth + (betaWidth == 1 ? 0 : h)]
                        for m in 0..<dv {
                            var retrieved: Float = 0
                            for d in 0..<dk { retrieved += state[base + d * dv + m] * k.data[kBase + d] }
                            update[m] = bt * (update[m] - retrieved)
                        }
                    }
                    for d in 0..<dk {
                        let kd = k.data[kBase + d]
                        for m in 0..<dv { state[base + d * dv + m] += kd * update[m] }
                    }
                    for g in 0..<group {
                        let head = h * group + g
                        let qBase = ((b * qh + head) * steps + t) * dk
                        for m in 0..<dv {
                            var acc: Float = 0
                            for d in 0..<dk { acc += q.data[qBase + d] * state[base + d * dv + m] }
                            output[((b * steps + t) * qh + head) * dv + m] = scale * acc
                        }
                    }
                }
            }
        }
        return [
            .tensor(try QuantValues.tensor(qt.dtype, shape: [batch, steps, qh * dv], output)),
            .tensor(try QuantValues.tensor(stateType, shape: [batch, kvh, dk, dv], state)),
        ]
    }
}
