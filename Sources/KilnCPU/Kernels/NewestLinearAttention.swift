import Foundation
import KilnIR
import KilnRuntime

/// linearAttention: the token-by-token recurrence, one (batch, kv head) state per task.
extension NewestKernels {
    static func linearAttention(
        _ layer: LinearAttentionLayer, _ inputs: [Value?], threads: Int
    ) throws -> (Tensor, Tensor) {
        let query = try inputs.tensor(0)
        let key = try inputs.tensor(1)
        let value = try inputs.tensor(2)
        let past = try inputs.optionalTensor(3)
        let decay = try inputs.optionalTensor(4)
        let beta = try inputs.optionalTensor(5)
        let hq = layer.queryHeads
        let hkv = layer.keyValueHeads
        guard hq > 0, hkv > 0, hq % hkv == 0 else {
            throw KilnError.invalidArgument("linearAttention heads \(hq)/\(hkv): query heads must be a multiple")
        }
        guard query.rank == 3, key.rank == 3, value.rank == 3 else {
            throw KilnError.shapeMismatch("linearAttention needs rank-3 query, key and value")
        }
        let (batch, steps) = (query.shape[0], query.shape[1])
        guard query.shape[2] % hq == 0, key.shape[2] % hkv == 0, value.shape[2] % hkv == 0 else {
            throw KilnError.shapeMismatch("linearAttention last dims do not divide by the head counts")
        }
        let dk = query.shape[2] / hq
        let dv = value.shape[2] / hkv
        guard key.shape == [batch, steps, hkv * dk], value.shape[0] == batch, value.shape[1] == steps else {
            throw KilnError.shapeMismatch(
                "linearAttention query \(query.shape), key \(key.shape), value \(value.shape) do not agree")
        }
        let stateShape = [batch, hkv, dk, dv]
        if let past, past.shape != stateShape {
            throw KilnError.shapeMismatch("linearAttention past_state \(past.shape), want \(stateShape)")
        }
        guard layer.rule.isGated == (decay != nil), layer.rule.isDelta == (beta != nil) else {
            throw KilnError.invalidArgument("linearAttention rule \(layer.rule.rawValue) with the wrong decay/beta inputs")
        }
        // Decay per kv head (last dim hkv) or per key dimension (hkv * dk); beta per kv head or shared (1).
        var decayPerKey = false
        if let decay {
            guard decay.rank == 3, decay.shape[0] == batch, decay.shape[1] == steps,
                decay.shape[2] == hkv || decay.shape[2] == hkv * dk
            else { throw KilnError.shapeMismatch("linearAttention decay \(decay.shape)") }
            decayPerKey = decay.shape[2] == hkv * dk && dk != 1
        }
        var betaWidth = 1
        if let beta {
            guard beta.rank == 3, beta.shape[0] == batch, beta.shape[1] == steps,
                beta.shape[2] == hkv || beta.shape[2] == 1
            else { throw KilnError.shapeMismatch("linearAttention beta \(beta.shape)") }
            betaWidth = beta.shape[2]
        }
        let qs = try doubles(query, "linearAttention")
        let ks = try doubles(key, "linearAttention")
        let vs = try doubles(value, "linearAttention")
        let ps = try past.map { try doubles($0, "linearAttention") }
        let gs = try decay.map { try doubles($0, "linearAttention") }
        let bs = try beta.map { try doubles($0, "linearAttention") }
        let scale = layer.scale != 0 ? Double(layer.scale) : 1 / Double(dk).squareRoot()
        let group = hq / hkv
        let decayWidth = decay?.shape[2] ?? 0

        var output = [Double](repeating: 0, count: batch * steps * hq * dv)
        var state = [Double](repeating: 0, count: batch * hkv * dk * dv)
        output.withUnsafeMutableBufferPointer { ob in
            state.withUnsafeMutableBufferPointer { sb in
                let out = UncheckedSendable(ob)
                let states = UncheckedSendable(sb)
                Parallel.forEach(batch * hkv, threads: threads) { range in
                    var s = [Double](repeating: 0, count: dk * dv)
                    var v = [Double](repeating: 0, count: dv)
                    for task in range {
                        let b = task / hkv
                        let h = task % hkv
                        let base = task * dk * dv
                        for i in 0..<(dk * dv) { s[i] = ps?[base + i] ?? 0 }
                        for t in 0..<steps {
                            let row = b * steps + t
                            if let gs {
                                for d in 0..<dk {
                                    let g = Foundation.exp(gs[row * decayWidth + (decayPerKey ? h * dk + d : h)])
                                    for m in 0..<dv { s[d * dv + m] *= g }
                                }
                            }
                            let kOff = row * hkv * dk + h * dk
                            let vOff = row * hkv * dv + h * dv
                            for m in 0..<dv { v[m] = vs[vOff + m] }
                            if let bs {
                                let rate = bs[row * betaWidth + (betaWidth == 1 ? 0 : h)]
                                for m in 0..<dv {
                                    var retrieved = 0.0
                                    for d in 0..<dk { retrieved += s[d * dv + m] * ks[kOff + d] }
                                    v[m] = rate * (v[m] - retrieved)
                                }
                            }
                            for d in 0..<dk {
                                let kd = ks[kOff + d]
                                for m in 0..<dv { s[d * dv + m] += kd * v[m] }
                            }
                            for qh in (h * group)..<((h + 1) * group) {
                                let qOff = row * hq * dk + qh * dk
                                let oOff = row * hq * dv + qh * dv
                                for m in 0..<dv {
                                    var acc = 0.0
                                    for d in 0..<dk { acc += qs[qOff + d] * s[d * dv + m] }
                                    out.value[oOff + m] = scale * acc
                                }
                            }
                        }
                        for i in 0..<(dk * dv) { states.value[base + i] = s[i] }
                    }
                }
            }
        }
        return (
            try tensor(output, query.dtype, [batch, steps, hq * dv]),
            try tensor(state, past?.dtype ?? query.dtype, stateShape)
        )
    }
}
