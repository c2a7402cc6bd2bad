import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// The host reference tactic candidates are checked against gives, at its sampled entries, what the CPU
/// backend's matMul gives for the same operands (runs without a GPU).
@Suite struct SampledProductTests {
    /// `D[i] = act(alpha · op(A[i]) · op(B[i]) + beta · C[i])` on the CPU, C [batch, m, n] or a bias row [n].
    func cpu(_ layer: MatMulLayer, _ a: Tensor, _ b: Tensor, _ c: Tensor) throws -> [Float] {
        let graph = Graph(
            name: "mm",
            inputs: [
                GraphValue(name: "a", type: .tensor(a.type)), GraphValue(name: "b", type: .tensor(b.type)),
                GraphValue(name: "c", type: .tensor(c.type)),
            ],
            outputs: [GraphValue(name: "d", type: nil)],
            nodes: [Node(name: "mm", layer: layer, inputs: ["a", "b", "c"], outputs: ["d"])])
        let engine = try Builder.build(graph, device: CPUDevice(threads: 2), config: BuilderConfig(optimize: false))
        let out = try engine.makeContext().run(["a": .tensor(a), "b": .tensor(b), "c": .tensor(c)])
        return try #require(out["d"]).asTensor().withUnsafeBuffer(as: Float.self) { Array($0) }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matchesTheCPUProduct(transposeA: Bool, transposeB: Bool) throws {
        let (batch, m, n, k) = (3, 7, 9, 33)
        let step = CUDAMatMul(
            a: .input(0), b: .input(1), c: .input(2), d: .output(0), m: m, n: n, k: k, transposeA: transposeA,
            transposeB: transposeB, batch: batch, strideA: m * k, strideB: k * n, strideC: m * n, strideD: m * n,
            alpha: 0.5, beta: 2, activation: .relu)
        let a = try CUDATacticTimer.randomValues(count: batch * m * k, seed: 1)
        let b = try CUDATacticTimer.randomValues(count: batch * k * n, seed: 2)
        let c = try CUDATacticTimer.randomValues(count: batch * m * n, seed: 3)
        let sample = SampledProduct(step, count: 40)
        let expected = sample.reference(a: a, b: b, c: c, bias: nil, tf32: false)
        let layer = MatMulLayer(
            transposeA: transposeA, transposeB: transposeB, alpha: 0.5, beta: 2,
            epilogue: Epilogue(activation: .relu))
        let d = try cpu(
            layer, Tensor(shape: [batch] + (transposeA ? [k, m] : [m, k]), scalars: a),
            Tensor(shape: [batch] + (transposeB ? [n, k] : [k, n]), scalars: b),
            Tensor(shape: [batch, m, n], scalars: c))
        #expect(sample.relativeError(of: d, from: expected) < 1e-6)
        #expect(expected.contains { $0 > 0 } && expected.contains { $0 == 0 }, "relu clips some entries")
        // A wrong result is caught: one sampled entry off by 1%.
        var wrong = d
        let e = sample.entries[5]
        wrong[e.batch * m * n + e.row * n + e.column] *= 1.01
        wrong[e.batch * m * n + e.row * n + e.column] += 0.01
        #expect(sample.relativeError(of: wrong, from: expected) > SampledProduct.tolerance(step, tf32: false))
    }

    /// A bias row and the tanh GELU, as cuBLASLt's epilogue applies them, with B shared by the whole batch.
    @Test func biasAndGeluWithSharedB() throws {
        let (batch, m, n, k) = (2, 5, 6, 17)
        let step = CUDAMatMul(
            a: .input(0), b: .input(1), bias: .input(2), d: .output(0), m: m, n: n, k: k, batch: batch,
            strideA: m * k, strideB: 0, strideD: m * n, activation: .gelu(tanh: true))
        let a = try CUDATacticTimer.randomValues(count: batch * m * k, seed: 4)
        let b = try CUDATacticTimer.randomValues(count: k * n, seed: 5)
        let bias = try CUDATacticTimer.randomValues(count: n, seed: 6)
        let sample = SampledProduct(step, count: 30)
        let expected = sample.reference(a: a, b: b, c: nil, bias: bias, tf32: false)
        let d = try cpu(
            MatMulLayer(epilogue: Epilogue(activation: .gelu(tanh: true))),
            Tensor(shape: [batch, m, k], scalars: a), Tensor(shape: [k, n], scalars: b),
            Tensor(shape: [n], scalars: bias))
        #expect(sample.relativeError(of: d, from: expected) < 1e-5)
    }

    @Test func tf32RoundsToTenMantissaBits() {
        #expect(SampledProduct.tf32(1 + 0x1p-11) == 1)  // a tie rounds to even
        #expect(SampledProduct.tf32(1 + 0x1p-11 + 0x1p-20) == 1 + 0x1p-10)
        #expect(SampledProduct.tf32(-3) == -3)
        #expect(
            !SampledProduct.supports(
                CUDAMatMul(a: .input(0), b: .input(1), d: .output(0), m: 1, n: 1, k: 1, activation: .silu)))
    }
}

/// On the GPU, every cuBLASLt algorithm the heuristics offer for these products reproduces the host reference:
/// the check rejects nothing that is right (strict float32 over a long k, TF32, float16 with bias and GELU).
@Suite(.enabled(if: gpuUsable)) struct TacticReferenceGPUTests {
    @Test func everyCandidateMatchesTheHostReference() throws {
        let device = try sharedGPU()
        let library = try CUBLASLt()
        let steps: [(CUDAMatMul, Bool)] = [
            (
                CUDAMatMul(a: .input(0), b: .input(1), d: .output(0), m: 256, n: 384, k: 4096, dtype: .float32),
                false
            ),
            (
                CUDAMatMul(
                    a: .input(0), b: .input(1), c: .input(2), d: .output(0), m: 96, n: 200, k: 640,
                    transposeB: true, batch: 3, strideA: 96 * 640, strideB: 200 * 640, strideC: 96 * 200,
                    strideD: 96 * 200, alpha: 0.5, beta: 1, activation: .relu, dtype: .float32), true
            ),
            (
                CUDAMatMul(
                    a: .input(0), b: .input(1), bias: .input(2), d: .output(0), m: 512, n: 768, k: 768,
                    activation: .gelu(tanh: true), dtype: .float16), false
            ),
        ]
        for (step, tf32) in steps {
            let runner = try CUDAMatMulRunner(step: step, library: library, allowTF32: tf32, candidates: 8)
            let outcome = try runner.tune(context: device.context, runs: 1)
            #expect(outcome.launched >= 1, "\(step.m)x\(step.n)x\(step.k): \(outcome)")
            #expect(outcome.rejected == 0, "\(step.m)x\(step.n)x\(step.k) \(step.dtype): \(outcome)")
            print("product reference check, \(step.m)x\(step.n)x\(step.k) \(step.dtype) tf32 \(tf32): \(outcome)")
        }
    }
}
