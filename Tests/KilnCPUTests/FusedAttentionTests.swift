import Foundation
import KilnIR
import KilnTestSupport
import Testing

/// The fused attention layer on the CPU against a naive softmax(scale·QKᵀ + mask)·V, with more query rows
/// than one block, K read transposed through its view, an output view whose columns are not adjacent, and rows
/// where every key is masked (NaN, or zeros with the folded guard).
@Suite struct FusedAttentionTests {
    @Test(arguments: [false, true])
    func matchesTheNaiveFormulaOverSeveralBlocks(zeroMaskedRows: Bool) throws {
        let (batch, heads, sq, sk, d, dv) = (2, 3, 150, 37, 8, 5)
        var rng = SeededGenerator(seed: 61)
        // Q [B, S, H, D] read as [B, H, S, D]; K stored [B, H, D, S]; V [B, H, S, Dv]; the output written
        // [B, H, Dv, S] (columns `sq` apart).
        let q = Tensor.random([batch, sq, heads, d], using: &rng)
        let k = Tensor.random([batch, heads, d, sk], using: &rng)
        let v = Tensor.random([batch, heads, sk, dv], using: &rng)
        var maskValues = [Float](repeating: 0, count: batch * sq * sk)
        for i in 0..<sq where i % 7 == 3 {
            for j in 0..<sk { maskValues[(1 * sq + i) * sk + j] = -.infinity }  // batch 1, row i: all masked
        }
        for (index, _) in maskValues.enumerated() where index % 5 == 1 && maskValues[index] == 0 {
            maskValues[index] = -2
        }
        let mask = Tensor(shape: [batch, 1, sq, sk], scalars: maskValues)
        let scale: Float = 0.3
        let layer = FusedAttentionLayer(
            batch: batch, heads: heads, queryLength: sq, keyLength: sk, headSize: d, valueHeadSize: dv,
            query: .init(strides: [sq * heads * d, d, heads * d, 1]),
            key: .init(strides: [heads * d * sk, d * sk, 1, sk]),
            value: .init(strides: [heads * sk * dv, sk * dv, dv, 1]),
            output: .init(strides: [heads * dv * sq, dv * sq, 1, sq]), outputShape: [batch, heads, dv, sq],
            scale: scale, zeroMaskedRows: zeroMaskedRows)
        let y = try LayerRunner.run(layer, q, k, v, mask).scalars(as: Float.self)
        let (qs, ks, vs) = (q.scalars(as: Float.self), k.scalars(as: Float.self), v.scalars(as: Float.self))
        var worst = 0.0
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<sq {
                    var scores = (0..<sk).map { j -> Double in
                        var dot = 0.0
                        for c in 0..<d {
                            dot +=
                                Double(qs[((b * sq + i) * heads + h) * d + c])
                                * Double(ks[((b * heads + h) * d + c) * sk + j])
                        }
                        return Double(scale) * dot + Double(maskValues[(b * sq + i) * sk + j])
                    }
                    let top = scores.max() ?? -.infinity
                    let masked = top == -.infinity
                    if !masked {
                        scores = scores.map { exp($0 - top) }
                        let sum = scores.reduce(0, +)
                        scores = scores.map { $0 / sum }
                    }
                    for c in 0..<dv {
                        let got = y[((b * heads + h) * dv + c) * sq + i]
                        if masked {
                            #expect(zeroMaskedRows ? got == 0 : got.isNaN, "row \(i) of batch \(b): \(got)")
                            continue
                        }
                        var want = 0.0
                        for j in 0..<sk { want += scores[j] * Double(vs[((b * heads + h) * sk + j) * dv + c]) }
                        worst = max(worst, abs(Double(got) - want))
                    }
                }
            }
        }
        #expect(worst < 1e-5, "worst error \(worst)")
    }
}
