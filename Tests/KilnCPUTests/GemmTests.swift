import Foundation
import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

/// Naive double-precision `alpha * op(A) x op(B) + beta * C` for 2-D operands, the reference for the SGEMM.
private func referenceGemm(
    _ a: Tensor, _ b: Tensor, _ c: Tensor?, transA: Bool, transB: Bool, alpha: Double, beta: Double
) -> [Double] {
    let av = a.scalars(as: Float.self).map(Double.init)
    let bv = b.scalars(as: Float.self).map(Double.init)
    let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
    let n = transB ? b.shape[0] : b.shape[1]
    var out = [Double](repeating: 0, count: m * n)
    let cv = c?.scalars(as: Float.self).map(Double.init)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for kk in 0..<k {
                let x = transA ? av[kk * m + i] : av[i * k + kk]
                let y = transB ? bv[j * k + kk] : bv[kk * n + j]
                s += x * y
            }
            var bias = 0.0
            if let c, let cv {
                // C broadcasts to [m, n]: scalar, [n], [1, n], [m, 1] or [m, n].
                let cs = c.shape
                let ci = cs.count == 2 ? (cs[0] == 1 ? 0 : i) * cs[1] + (cs[1] == 1 ? 0 : j) : (cs.last == 1 ? 0 : j)
                bias = cv[cs.isEmpty ? 0 : ci]
            }
            out[i * n + j] = alpha * s + beta * bias
        }
    }
    return out
}

private func assertClose(_ actual: Tensor, _ expected: [Double], tolerance: Double = 1e-4) {
    let a = actual.scalars(as: Float.self)
    #expect(a.count == expected.count)
    var worst = 0.0
    for (x, y) in zip(a, expected) { worst = max(worst, abs(Double(x) - y) / max(1, abs(y))) }
    #expect(worst < tolerance, "worst relative error \(worst)")
}

@Suite struct GemmTests {
    @Test(arguments: [
        (1, 1, 1), (7, 13, 5), (6, 8, 256), (37, 300, 19), (130, 200, 260), (121, 193, 513), (5, 1000, 64),
    ])
    func floatMatMulMatchesReference(m: Int, k: Int, n: Int) throws {
        var rng = SeededGenerator(seed: UInt64(m * 1_000_003 + k * 1009 + n))
        let a = Tensor.random([m, k], using: &rng)
        let b = Tensor.random([k, n], using: &rng)
        let y = try LayerRunner.run(MatMulLayer(), a, b)
        #expect(y.shape == [m, n])
        assertClose(y, referenceGemm(a, b, nil, transA: false, transB: false, alpha: 1, beta: 1))
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmTransposesAlphaBetaAndBias(transA: Bool, transB: Bool) throws {
        var rng = SeededGenerator(seed: 42)
        let (m, k, n) = (29, 70, 45)
        let a = Tensor.random(transA ? [k, m] : [m, k], using: &rng)
        let b = Tensor.random(transB ? [n, k] : [k, n], using: &rng)
        for cShape in [[], [n], [1, n], [m, 1], [m, n]] {
            let c = Tensor.random(cShape, using: &rng)
            let layer = MatMulLayer(transposeA: transA, transposeB: transB, alpha: 0.75, beta: -1.5)
            let y = try LayerRunner.run(layer, a, b, c)
            assertClose(y, referenceGemm(a, b, c, transA: transA, transB: transB, alpha: 0.75, beta: -1.5))
        }
    }

    @Test func constantWeightsArePackedOnceAndReused() throws {
        // The same B tensor on repeated runs hits the packed-panel cache; results must not change.
        var rng = SeededGenerator(seed: 7)
        let b = Tensor.random([300, 70], using: &rng)
        for _ in 0..<3 {
            let a = Tensor.random([50, 300], using: &rng)
            let y = try LayerRunner.run(MatMulLayer(), a, b)
            assertClose(y, referenceGemm(a, b, nil, transA: false, transB: false, alpha: 1, beta: 1))
        }
    }

    /// float16 operands: one engine run several times; B is widened once and reused while it is the same tensor,
    /// and another B is not mistaken for it.
    @Test func halfPrecisionWeightsAreWidenedOnceAndFollowTheirTensor() throws {
        let half = { (dims: [Int]) in ValueType.tensor(TensorType(.float16, dims.map { Dim.value($0) })) }
        let graph = Graph(
            name: "g",
            inputs: [GraphValue(name: "a", type: half([10, 64])), GraphValue(name: "b", type: half([64, 48]))],
            outputs: [GraphValue(name: "y", type: nil)],
            nodes: [Node(name: "mm", layer: MatMulLayer(), inputs: ["a", "b"], outputs: ["y"])])
        let context = try Builder.build(graph, device: CPUDevice(options: .untuned)).makeContext()
        var rng = SeededGenerator(seed: 9)
        let first = try Tensor.random([64, 48], using: &rng).cast(to: .float16)
        let second = try Tensor.random([64, 48], using: &rng).cast(to: .float16)
        for b in [first, first, second, first] {
            let a = try Tensor.random([10, 64], using: &rng).cast(to: .float16)
            let y = try #require(try context.run(["a": .tensor(a), "b": .tensor(b)])["y"]).asTensor()
            #expect(y.dtype == .float16)
            let want = referenceGemm(
                try a.cast(to: .float32), try b.cast(to: .float32), nil, transA: false, transB: false, alpha: 1,
                beta: 1)
            assertClose(try y.cast(to: .float32), want, tolerance: 2e-3)
        }
    }

    /// Prints SGEMM throughput. Run in release: `KILN_BENCH=1 swift test -c release --filter sgemmThroughput`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["KILN_BENCH"] != nil))
    func sgemmThroughput() throws {
        var rng = SeededGenerator(seed: 1)
        for size in [64, 256, 512, 1024] {
            let a = Tensor.random([size, size], using: &rng)
            let b = Tensor.random([size, size], using: &rng)
            _ = try LayerRunner.run(MatMulLayer(), a, b)
            let reps = max(1, 2_000_000_000 / (2 * size * size * size))
            let start = Date()
            for _ in 0..<reps { _ = try LayerRunner.run(MatMulLayer(), a, b) }
            let seconds = Date().timeIntervalSince(start) / Double(reps)
            let gflops = 2 * Double(size * size * size) / seconds / 1e9
            print("sgemm \(size)x\(size)x\(size): \(String(format: "%.2f", gflops)) GFLOP/s (\(reps) runs)")
        }
    }
}
