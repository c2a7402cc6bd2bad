import Foundation
import KilnIR
import KilnRuntime

/// flexAttention: scores, the score modifier graph, softmax, the probability modifier graph, then P·V.
/// Arithmetic runs in Double; the modifier graphs see tensors of the layer's softmax precision.
extension NewestKernels {
    static let flexAttentionFactory: CPUKernelFactory = { layer, compiler in
        guard let typed = layer as? FlexAttentionLayer else {
            throw KilnError.runtime("layer of kind flexAttention has unexpected parameter type \(type(of: layer))")
        }
        let score = try typed.scoreModifier.map { g in try withErrorContext("score_mod") { try compiler.compile(g) } }
        let prob = try typed.probabilityModifier.map { g in
            try withErrorContext("prob_mod") { try compiler.compile(g) }
        }
        return ClosureKernel { inputs, context in
            let q = try inputs.tensor(0)
            let k = try inputs.tensor(1)
            let v = try inputs.tensor(2)
            guard q.rank == 4, k.rank == 4, v.rank == 4 else {
                throw KilnError.shapeMismatch("flexAttention needs rank-4 Q, K, V, has \(q.shape), \(k.shape), \(v.shape)")
            }
            let (batch, hq, length, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
            let (hkv, span, ev) = (k.shape[1], k.shape[2], v.shape[3])
            guard k.shape[0] == batch, v.shape[0] == batch, k.shape[3] == e, v.shape[1] == hkv, v.shape[2] == span,
                hkv > 0, hq % hkv == 0
            else {
                throw KilnError.shapeMismatch("flexAttention Q \(q.shape), K \(k.shape), V \(v.shape) do not agree")
            }
            let precision = typed.softmaxPrecision ?? (q.dtype == .float64 ? .float64 : .float32)
            let scale = typed.scale.map(Double.init) ?? 1 / Double(e).squareRoot()
            let qs = try doubles(q, "flexAttention")
            let ks = try doubles(k, "flexAttention")
            let vs = try doubles(v, "flexAttention")
            let group = hq / hkv
            let rows = batch * hq * length
            let probShape = [batch, hq, length, span]
            var scores = [Double](repeating: 0, count: rows * span)
            for row in 0..<rows {
                let bh = row / length
                let kvHead = (bh / hq) * hkv + (bh % hq) / group
                for s in 0..<span {
                    var acc = 0.0
                    for d in 0..<e { acc += qs[row * e + d] * ks[(kvHead * span + s) * e + d] }
                    scores[row * span + s] = acc * scale
                }
            }
            scores = try modify(scores, probShape, precision, score, context, "score_mod")
            for row in 0..<rows {
                let base = row * span
                var peak = -Double.infinity
                for s in 0..<span { peak = max(peak, scores[base + s]) }
                var total = 0.0
                for s in 0..<span {
                    let x = Foundation.exp(scores[base + s] - peak)
                    scores[base + s] = x
                    total += x
                }
                for s in 0..<span { scores[base + s] /= total }
            }
            scores = try modify(scores, probShape, precision, prob, context, "prob_mod")
            var out = [Double](repeating: 0, count: rows * ev)
            for row in 0..<rows {
                let bh = row / length
                let kvHead = (bh / hq) * hkv + (bh % hq) / group
                for s in 0..<span {
                    let p = scores[row * span + s]
                    if p == 0 { continue }
                    for m in 0..<ev { out[row * ev + m] += p * vs[(kvHead * span + s) * ev + m] }
                }
            }
            return [.tensor(try tensor(out, v.dtype, [batch, hq, length, ev]))]
        }
    }

    /// Runs a modifier graph on `values` as a tensor of `precision`; without a graph, rounds to that precision
    /// as the specified computation does.
    private static func modify(
        _ values: [Double], _ shape: [Int], _ precision: DType, _ graph: CompiledGraph?, _ context: KernelContext,
        _ name: String
    ) throws -> [Double] {
        let input = try tensor(values, precision, shape)
        guard let graph else { return try doubles(input, name) }
        return try withErrorContext(name) {
            let results = try graph.run([.tensor(input)], outer: context.scope)
            guard results.count == 1 else { throw KilnError.invalidModel("\(name) returns \(results.count) values") }
            let result = try results[0].asTensor()
            guard result.shape == shape else {
                throw KilnError.shapeMismatch("\(name) returns shape \(result.shape), want \(shape)")
            }
            return try doubles(result, name)
        }
    }
}
