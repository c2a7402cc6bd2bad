import Foundation
import KilnIR
import KilnRuntime

/// The optimizer's fused attention on the CPU: per (batch, head), the keys and values are gathered once from
/// their views into contiguous rows, then each query row gets its scores, softmax and weighted sum of values
/// without a score tensor. Computes in Float (inputs of other float types are widened and the result narrowed).
enum FusedAttentionKernel {
    static func run(_ layer: FusedAttentionLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let qt = try inputs.tensor(0)
        let q = try QuantValues.floats(qt)
        let k = try QuantValues.floats(inputs.tensor(1))
        let v = try QuantValues.floats(inputs.tensor(2))
        let mask = try inputs.optionalTensor(3).map { t in
            guard try Broadcast.shape(t.shape, layer.scoreShape) == layer.scoreShape else {
                throw KilnError.shapeMismatch(
                    "fused attention mask \(t.shape) does not broadcast to \(layer.scoreShape)")
            }
            return (
                values: try QuantValues.floats(t),
                strides: Broadcast.strides(of: t.shape, broadcastTo: layer.scoreShape)
            )
        }
        try layer.checkViews(inputCounts: [q.count, k.count, v.count])
        let (heads, sq, sk) = (layer.heads, layer.queryLength, layer.keyLength)
        let (d, dv) = (layer.headSize, layer.valueHeadSize)
        let (qs, os) = (layer.query.strides, layer.output.strides)
        var out = [Float](repeating: 0, count: layer.outputShape.reduce(1, *))
        out.withUnsafeMutableBufferPointer { buffer in
            let result = UncheckedSendable(buffer)
            Parallel.forEach(layer.batch * heads, threads: threads) { jobs in
                var keys = [Float](repeating: 0, count: sk * d)
                var values = [Float](repeating: 0, count: sk * dv)
                var query = [Float](repeating: 0, count: d)
                var scores = [Float](repeating: 0, count: sk)
                var row = [Float](repeating: 0, count: dv)
                for job in jobs {
                    let (b, h) = (job / heads, job % heads)
                    gather(k, layer.key, b, h, rows: sk, width: d, into: &keys)
                    gather(v, layer.value, b, h, rows: sk, width: dv, into: &values)
                    for i in 0..<sq {
                        let qBase = layer.query.offset + b * qs[0] + h * qs[1] + i * qs[2]
                        for c in 0..<d { query[c] = q[qBase + c * qs[3]] }
                        var top = -Float.infinity
                        for j in 0..<sk {
                            var dot: Float = 0
                            for c in 0..<d { dot += query[c] * keys[j * d + c] }
                            var s = dot * layer.scale
                            if let mask {
                                let ms = mask.strides
                                s += mask.values[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]]
                            }
                            scores[j] = s
                            if s > top { top = s }
                        }
                        var sum: Float = 0
                        if top != -.infinity {
                            for j in 0..<sk {
                                scores[j] = expf(scores[j] - top)
                                sum += scores[j]
                            }
                        }
                        // Every key masked, or a NaN score: zeros with the folded guard, NaN as softmax gives.
                        let empty = top == -.infinity || sum.isNaN
                        for c in 0..<dv { row[c] = empty && !layer.zeroMaskedRows ? .nan : 0 }
                        if !empty {
                            for j in 0..<sk {
                                let p = scores[j] / sum
                                for c in 0..<dv { row[c] += p * values[j * dv + c] }
                            }
                        }
                        let oBase = layer.output.offset + b * os[0] + h * os[1] + i * os[2]
                        for c in 0..<dv { result.value[oBase + c * os[3]] = row[c] }
                    }
                }
            }
        }
        return try QuantValues.tensor(qt.dtype, shape: layer.outputShape, out)
    }

    /// Rows 0..<rows of head (b, h) of `view`, each `width` elements, contiguous in `into`.
    private static func gather(
        _ source: [Float], _ view: FusedAttentionLayer.View, _ b: Int, _ h: Int, rows: Int, width: Int,
        into destination: inout [Float]
    ) {
        let s = view.strides
        let base = view.offset + b * s[0] + h * s[1]
        for r in 0..<rows {
            for c in 0..<width { destination[r * width + c] = source[base + r * s[2] + c * s[3]] }
        }
    }
}
