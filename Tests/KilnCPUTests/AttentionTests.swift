import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// Attention against a naive softmax(QKᵀ·scale + mask)·V written here; RotaryEmbedding against the rotation
/// formula.
struct AttentionTests {
    @Test(arguments: [false, true]) func attentionMatchesNaiveReference(causal: Bool) throws {
        var gen = SeededGenerator(seed: 41)
        let (b, qh, kvh, s, t, d) = (2, 4, 2, 3, 5, 4)
        let q = Tensor.random([b, qh, s, d], using: &gen)
        let k = Tensor.random([b, kvh, t, d], using: &gen)
        let v = Tensor.random([b, kvh, t, d], using: &gen)
        let outs = try LayerRunner.run(
            AttentionLayer(isCausal: causal), inputs: [q, k, v].map { .tensor($0) }, outputCount: 1)
        let (qv, kv, vv) = (q.scalars(as: Float.self), k.scalars(as: Float.self), v.scalars(as: Float.self))
        var expected = [Float](repeating: 0, count: b * qh * s * d)
        let scale = 1 / Float(d).squareRoot()
        for bi in 0..<b {
            for h in 0..<qh {
                let g = h / (qh / kvh)
                for i in 0..<s {
                    var scores = (0..<t).map { j -> Float in
                        (0..<d).reduce(0) {
                            $0 + qv[((bi * qh + h) * s + i) * d + $1] * kv[((bi * kvh + g) * t + j) * d + $1]
                        }
                            * scale
                    }
                    if causal { for j in 0..<t where j > i { scores[j] = -.infinity } }
                    let m = scores.max() ?? 0
                    let e = scores.map { exp($0 - m) }
                    let sum = e.reduce(0, +)
                    for c in 0..<d {
                        expected[((bi * qh + h) * s + i) * d + c] =
                            (0..<t).reduce(0) { $0 + e[$1] / sum * vv[((bi * kvh + g) * t + $1) * d + c] }
                    }
                }
            }
        }
        #expect(
            Comparison.mismatch(try outs[0].asTensor(), Tensor(shape: [b, qh, s, d], scalars: expected), atol: 1e-6)
                == nil)
    }

    @Test func attentionTypesFor3DInputsWithPast() throws {
        let layer = AttentionLayer(qNumHeads: 4, kvNumHeads: 2)
        let types = try layer.inferTypes([
            LayerInput(type: .tensor(TensorType(.float32, [2, 3, 32]))),
            LayerInput(type: .tensor(TensorType(.float32, [2, 5, 16]))),
            LayerInput(type: .tensor(TensorType(.float32, [2, 5, 24]))),
            .absent,
            LayerInput(type: .tensor(TensorType(.float32, [2, 2, 7, 8]))),
            LayerInput(type: .tensor(TensorType(.float32, [2, 2, 7, 12]))),
        ])
        #expect(types[0] == .tensor(TensorType(.float32, [2, 3, 48])))
        #expect(types[1] == .tensor(TensorType(.float32, [2, 2, 12, 8])))
        #expect(types[3] == .tensor(TensorType(.float32, [2, 4, 3, 12])))
    }

    @Test func rotaryEmbeddingRotatesHalves() throws {
        var gen = SeededGenerator(seed: 42)
        let (b, h, s, d) = (1, 2, 3, 4)
        let x = Tensor.random([b, h, s, d], using: &gen)
        let cos = Tensor.random([b, s, d / 2], using: &gen)
        let sin = Tensor.random([b, s, d / 2], using: &gen)
        let out = try LayerRunner.run(RotaryEmbeddingLayer(interleaved: false, rotaryDim: 0, numHeads: 0), x, cos, sin)
        let (xv, cv, sv) = (x.scalars(as: Float.self), cos.scalars(as: Float.self), sin.scalars(as: Float.self))
        var expected = xv
        for hi in 0..<h {
            for t in 0..<s {
                let base = (hi * s + t) * d
                for i in 0..<(d / 2) {
                    let (x1, x2) = (xv[base + i], xv[base + i + d / 2])
                    expected[base + i] = cv[t * 2 + i] * x1 - sv[t * 2 + i] * x2
                    expected[base + i + d / 2] = sv[t * 2 + i] * x1 + cv[t * 2 + i] * x2
                }
            }
        }
        #expect(Comparison.mismatch(out, Tensor(shape: [b, h, s, d], scalars: expected)) == nil)
    }

    @Test func linearAttentionAccumulatesOuterProducts() throws {
        var gen = SeededGenerator(seed: 43)
        let (t, dk, dv) = (3, 2, 3)
        let q = Tensor.random([1, t, dk], using: &gen)
        let k = Tensor.random([1, t, dk], using: &gen)
        let v = Tensor.random([1, t, dv], using: &gen)
        let outs = try LayerRunner.run(
            LinearAttentionLayer(update: .linear, qNumHeads: 1, kvNumHeads: 1, scale: 0.5),
            inputs: [q, k, v].map { .tensor($0) }, outputCount: 2)
        let (qv, kv, vv) = (q.scalars(as: Float.self), k.scalars(as: Float.self), v.scalars(as: Float.self))
        var state = [Float](repeating: 0, count: dk * dv)
        var expected: [Float] = []
        for step in 0..<t {
            for d in 0..<dk { for m in 0..<dv { state[d * dv + m] += kv[step * dk + d] * vv[step * dv + m] } }
            for m in 0..<dv {
                expected.append(0.5 * (0..<dk).reduce(0) { $0 + qv[step * dk + $1] * state[$1 * dv + m] })
            }
        }
        #expect(Comparison.mismatch(try outs[0].asTensor(), Tensor(shape: [1, t, dv], scalars: expected)) == nil)
        #expect(Comparison.mismatch(try outs[1].asTensor(), Tensor(shape: [1, 1, dk, dv], scalars: state)) == nil)
    }

    @Test func flexAttentionWithoutModsIsPlainAttention() throws {
        var gen = SeededGenerator(seed: 44)
        let q = Tensor.random([1, 2, 3, 4], using: &gen)
        let k = Tensor.random([1, 1, 5, 4], using: &gen)
        let v = Tensor.random([1, 1, 5, 2], using: &gen)
        let flex = try LayerRunner.run(FlexAttentionLayer(scale: 0.3), q, k, v)
        let (qv, kv, vv) = (q.scalars(as: Float.self), k.scalars(as: Float.self), v.scalars(as: Float.self))
        var expected: [Float] = []
        for h in 0..<2 {
            for i in 0..<3 {
                let scores = (0..<5).map { j in
                    0.3 * (0..<4).reduce(Float(0)) { $0 + qv[(h * 3 + i) * 4 + $1] * kv[j * 4 + $1] }
                }
                let m = scores.max() ?? 0
                let e = scores.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for c in 0..<2 { expected.append((0..<5).reduce(0) { $0 + e[$1] / sum * vv[$1 * 2 + c] }) }
            }
        }
        #expect(Comparison.mismatch(flex, Tensor(shape: [1, 2, 3, 2], scalars: expected), atol: 1e-6) == nil)
    }
}
