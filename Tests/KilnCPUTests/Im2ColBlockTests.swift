import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCPU

/// The product that makes its im2col a block at a time (`Im2ColBlock`, `SGEMM.multiply(_:columns:packB:)`)
/// against the whole im2col packed first and multiplied: the same bits, for each micro-kernel this CPU runs,
/// over padding on every side, strides, dilations, 1-D, depth in several blocks and many column tiles, with
/// a bias and ReLU in the epilogue.
@Suite struct Im2ColBlockTests {
    struct Case: Sendable, CustomStringConvertible {
        var x: [Int]
        var w: [Int]
        var strides: [Int]
        var dilations: [Int]
        var pads: [Int]
        var description: String { "x\(x) w\(w) s\(strides) d\(dilations) p\(pads)" }
    }

    static let cases = [
        Case(x: [20, 30, 29], w: [96, 20, 3, 3], strides: [2, 2], dilations: [2, 2], pads: [2, 1, 0, 3]),
        Case(x: [8, 40, 40], w: [32, 8, 3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1]),
        Case(x: [40, 9, 11], w: [13, 40, 3, 3], strides: [1, 2], dilations: [1, 1], pads: [0, 1, 2, 0]),
        Case(x: [3, 37], w: [5, 3, 5], strides: [2], dilations: [1], pads: [2, 1]),
        Case(x: [4, 6, 6], w: [7, 4, 7, 7], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1]),
    ]

    @Test(arguments: cases)
    func matchesTheWholeIm2Col(_ c: Case) throws {
        let tactics = GemmTactic.candidates.filter { $0.kernel.tile != nil && c.w[0] <= $0.mc }
        guard !tactics.isEmpty else {
            withKnownIssue("this CPU has no C micro-kernel: the streamed product was NOT run") {
                Issue.record("no C micro-kernel")
            }
            return
        }
        var rng = SeededGenerator(seed: UInt64(c.x.reduce(11, *)))
        let x = try Tensor.random(c.x, using: &rng).scalars(as: Float.self)
        let w = try Tensor.random(c.w, using: &rng).scalars(as: Float.self)
        let bias = try Tensor.random([c.w[0]], using: &rng).scalars(as: Float.self)
        let spatial = Array(c.x.dropFirst())
        let params = ConvolutionParameters(strides: c.strides, dilations: c.dilations, pads: c.pads)
        let r = try params.resolve(input: spatial, kernel: Array(c.w.dropFirst(2)))
        let (m, depth, n) = (c.w[0], c.w.dropFirst().reduce(1, *), r.output.reduce(1, *))
        for tactic in tactics {
            var whole = [Float](repeating: .nan, count: m * n)
            var streamed = [Float](repeating: .nan, count: m * n)
            x.withUnsafeBufferPointer { xb in
                w.withUnsafeBufferPointer { wb in
                    bias.withUnsafeBufferPointer { bb in
                        let epilogue = GemmEpilogue(rowBias: bb.baseAddress, activation: .relu)
                        let a = PackedPanels.pack(
                            FloatMatrix(base: wb.baseAddress!, rowStride: depth, columnStride: 1), extent: m,
                            depth: depth, width: tactic.mr, blockSize: tactic.kc, threads: 2)
                        let b = Im2Col.pack(
                            xb.baseAddress!, channels: c.x[0], spatial: spatial, r, tactic: tactic, threads: 2)
                        whole.withUnsafeMutableBufferPointer {
                            SGEMM.multiply(
                                a, b, into: $0.baseAddress!, ldc: n, epilogue: epilogue, tactic: tactic, threads: 2)
                        }
                        let block = Im2ColBlock(xb.baseAddress!, spatial: spatial, r, tactic: tactic)!
                        streamed.withUnsafeMutableBufferPointer {
                            SGEMM.multiply(
                                a, columns: n, packB: { block.pack(block: $0, panels: $1, depth: depth, into: $2) },
                                into: $0.baseAddress!, ldc: n, epilogue: epilogue, tactic: tactic, threads: 2)
                        }
                    }
                }
            }
            #expect(whole.allSatisfy { $0.isFinite }, "\(tactic)")
            #expect(streamed == whole, "\(tactic): \(zip(streamed, whole).filter { $0 != $1 }.count) differ")
        }
    }
}
