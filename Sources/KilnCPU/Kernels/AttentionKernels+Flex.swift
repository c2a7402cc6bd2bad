import Foundation
import KilnIR
import KilnRuntime

/// FlexAttention: scores and probabilities pass through the compiled mod graphs as whole tensors of the
/// softmax type.
enum FlexAttentionKernel {
    static let factory: CPUKernelFactory = { layer, compiler in
        let typed = try ControlFlowKernels.cast(layer, FlexAttentionLayer.self)
        let scoreMod = try typed.scoreMod.map { graph in
            try withErrorContext("score_mod") { try compiler.compile(graph) }
        }
        let probMod = try typed.probMod.map { graph in
            try withErrorContext("prob_mod") { try compiler.compile(graph) }
        }
        return ClosureKernel { inputs, context in
            [.tensor(try run(typed, scoreMod, probMod, inputs, context))]
        }
    }

    private static func apply(
        _ mod: CompiledGraph?, _ values: [Float], _ shape: [Int], _ type: DType, _ name: String,
        _ context: KernelContext
    ) throws -> [Float] {
        guard let mod else { return values }
        return try withErrorContext(name) {
            let outs = try mod.run([.tensor(QuantValues.tensor(type, shape: shape, values))], outer: context.scope)
            guard outs.count == 1 else { throw KilnError.invalidModel("\(name) must return one value") }
            let result = try outs[0].asTensor()
            guard result.count == values.count else {
                throw KilnError.shapeMismatch("\(name) returned shape \(result.shape), expected \(shape)")
            }
            return try QuantValues.floats(result)
        }
    }

    static func run(
        _ layer: FlexAttentionLayer, _ scoreMod: CompiledGraph?, _ probMod: CompiledGraph?, _ inputs: [Value?],
        _ context: KernelContext
    ) throws -> Tensor {
        let qt = try inputs.tensor(0)
        let vt = try inputs.tensor(2)
        guard qt.rank == 4 else { throw KilnError.shapeMismatch("FlexAttention needs rank-4 inputs") }
        let q = try AttentionHeads(qt, heads: nil, "Q")
        let k = try AttentionHeads(inputs.tensor(1), heads: nil, "K")
        let v = try AttentionHeads(vt, heads: nil, "V")
        guard k.batch == q.batch, v.batch == q.batch, k.heads == v.heads, k.length == v.length, k.dim == q.dim,
            k.heads > 0, q.heads % k.heads == 0
        else {
            throw KilnError.shapeMismatch("FlexAttention Q, K and V shapes do not agree")
        }
        let dtype = qt.dtype
        let compute = layer.softmaxPrecision ?? (dtype == .float16 || dtype == .bfloat16 ? .float32 : dtype)
        let (batch, heads, l, s, e) = (q.batch, q.heads, q.length, k.length, q.dim)
        let group = heads / k.heads
        let root = QuantValues.narrowed((layer.scale ?? 1 / Float(e).squareRoot()).squareRoot(), dtype)
        let qs = q.data.map { QuantValues.narrowed($0 * root, dtype) }
        let ks = k.data.map { QuantValues.narrowed($0 * root, dtype) }
        var scores = [Float](repeating: 0, count: batch * heads * l * s)
        for b in 0..<batch {
            for h in 0..<heads {
                let kvh = h / group
                for i in 0..<l {
                    for j in 0..<s {
                        var dot: Float = 0
                        let qBase = ((b * heads + h) * l + i) * e
                        let kBase = ((b * k.heads + kvh) * s + j) * e
                        for d in 0..<e { dot += qs[qBase + d] * ks[kBase + d] }
                        scores[((b * heads + h) * l + i) * s + j] = QuantValues.narrowed(dot, dtype)
                    }
                }
            }
        }
        let shape = [batch, heads, l, s]
        scores = try apply(scoreMod, scores, shape, compute, "score_mod", context)
        for row in 0..<(batch * heads * l) {
            let base = row * s
            var m = -Float.infinity
            var sawNaN = false
            for j in 0..<s {
                if scores[base + j].isNaN { sawNaN = true } else { m = max(m, scores[base + j]) }
            }
            if sawNaN { m = .nan }
            var sum: Float = 0
            for j in 0..<s {
                scores[base + j] = expf(scores[base + j] - m)
                sum += scores[base + j]
            }
            for j in 0..<s { scores[base + j] /= sum }
        }
        let probs = try apply(probMod, scores, shape, compute, "prob_mod", context)
        let vd = v.dim
        var out = [Float](repeating: 0, count: batch * heads * l * vd)
        for b in 0..<batch {
            for h in 0..<heads {
                let kvh = h / group
                for i in 0..<l {
                    let pBase = ((b * heads + h) * l + i) * s
                    for d in 0..<vd {
                        var acc: Float = 0
                        for j in 0..<s { acc += probs[pBase + j] * v.data[((b * k.heads + kvh) * s + j) * vd + d] }
                        out[((b * heads + h) * l + i) * vd + d] = acc
                    }
                }
            }
        }
        return try QuantValues.tensor(vt.dtype, shape: [batch, heads, l, vd], out)
    }
}
