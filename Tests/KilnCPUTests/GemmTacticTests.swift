import Foundation
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCPU

/// The CPU's GEMM tactics: every micro-kernel this CPU runs, at every depth blocking, computes the product the
/// double-precision reference does; the tuner times them per layer signature, keeps its choice, and a plan or
/// timing cache that names a choice is followed without timing.
@Suite struct GemmTacticTests {
    /// `C0 + alpha * A x B` in double precision, A `m x k`, B `k x n`, row-major.
    static func reference(_ a: [Float], _ b: [Float], _ c0: [Float], m: Int, n: Int, k: Int, alpha: Double) -> [Double]
    {
        var out = c0.map(Double.init)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for d in 0..<k { s += Double(a[i * k + d]) * Double(b[d * n + j]) }
                out[i * n + j] += alpha * s
            }
        }
        return out
    }

    /// Edge tiles in both directions (no size is a multiple of any tile), depths that cross the 128, 256 and 512
    /// blocks, accumulation into C, alpha, and several threads.
    @Test(arguments: GemmTactic.candidates)
    func everyTacticMatchesTheReference(tactic: GemmTactic) throws {
        for (m, k, n) in [(53, 300, 71), (5, 600, 3), (97, 1100, 40)] {
            var random = SeededGenerator(seed: UInt64(m * 7919 + k * 31 + n) ^ UInt64(tactic.description.count))
            let a = Tensor.random([m, k], using: &random).scalars(as: Float.self)
            let b = Tensor.random([k, n], using: &random).scalars(as: Float.self)
            let c0 = Tensor.random([m, n], using: &random).scalars(as: Float.self)
            var c = c0
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        SGEMM.gemm(
                            m: m, n: n, k: k, a: FloatMatrix(base: ap.baseAddress!, rowStride: k, columnStride: 1),
                            b: FloatMatrix(base: bp.baseAddress!, rowStride: n, columnStride: 1), c: cp.baseAddress!,
                            ldc: n, alpha: 0.5, accumulate: true, tactic: tactic, threads: 3)
                    }
                }
            }
            let want = Self.reference(a, b, c0, m: m, n: n, k: k, alpha: 0.5)
            let worst = zip(c, want).map { abs(Double($0) - $1) / max(1, abs($1)) }.max() ?? 0
            #expect(worst < 1e-5, "\(tactic) \(m)x\(k)x\(n): worst relative error \(worst)")
        }
    }

    /// The epilogue (row bias, residual, then an activation) on whole and edge tiles: ReLU and clip run inside the
    /// C micro-kernels, sigmoid and the vectorized erf GELU after them; a NaN in the residual stays NaN.
    @Test(arguments: GemmTactic.candidates)
    func everyTacticAppliesTheEpilogue(tactic: GemmTactic) throws {
        let (m, k, n) = (29, 70, 45)
        var random = SeededGenerator(seed: 5)
        let a = Tensor.random([m, k], using: &random).scalars(as: Float.self)
        let b = Tensor.random([k, n], using: &random).scalars(as: Float.self)
        let bias = Tensor.random([m], using: &random).scalars(as: Float.self)
        var residual = Tensor.random([m, n], using: &random).scalars(as: Float.self)
        residual[3 * n + 7] = .nan
        let activations: [(EpilogueActivation, (Double) -> Double)] = [
            (.relu, { $0.isNaN ? $0 : max(0, $0) }),
            (.clip(min: -0.25, max: 0.5), { $0.isNaN ? $0 : min(0.5, max(-0.25, $0)) }),
            (.sigmoid, { 1 / (1 + exp(-$0)) }),
            (.gelu(tanh: false), { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }),
        ]
        let product = Self.reference(a, b, [Float](repeating: 0, count: m * n), m: m, n: n, k: k, alpha: 1)
        for (activation, function) in activations {
            var c = [Float](repeating: 0, count: m * n)
            bias.withUnsafeBufferPointer { biasPointer in
                residual.withUnsafeBufferPointer { residualPointer in
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                let epilogue = GemmEpilogue(
                                    rowBias: biasPointer.baseAddress, residual: residualPointer.baseAddress,
                                    residualStride: n, activation: activation)
                                SGEMM.gemm(
                                    m: m, n: n, k: k,
                                    a: FloatMatrix(base: ap.baseAddress!, rowStride: k, columnStride: 1),
                                    b: FloatMatrix(base: bp.baseAddress!, rowStride: n, columnStride: 1),
                                    c: cp.baseAddress!, ldc: n, epilogue: epilogue, tactic: tactic, threads: 2)
                            }
                        }
                    }
                }
            }
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    let want = function(product[i * n + j] + Double(bias[i]) + Double(residual[i * n + j]))
                    let got = Double(c[i * n + j])
                    if want.isNaN {
                        #expect(got.isNaN, "\(tactic) \(activation): NaN at (\(i), \(j)) became \(got)")
                    } else {
                        worst = max(worst, abs(got - want) / max(1, abs(want)))
                    }
                }
            }
            #expect(worst < 1e-5, "\(tactic) \(activation): worst relative error \(worst)")
        }
    }

    @Test func tacticNamesRoundTripAndUnknownOnesAreRefused() {
        for tactic in GemmTactic.candidates { #expect(GemmTactic(named: tactic.description) == tactic) }
        #expect(GemmTactic(named: "cpu.gemm.avx9.6x16.kc256") == nil)
        #expect(GemmTactic(named: "cpu.gemm.simd.6x8.kc") == nil)
        #expect(GemmTactic(named: "cpu.gemm.simd.6x8.kc0") == nil)
        #expect(GemmTactic(named: "cuda.cublaslt.3") == nil)
        #expect(GemmTactic.candidates.first == .heuristic)
        #expect(GemmTactic.candidates.contains(.portable))
    }

    /// One convolution, large enough to be timed.
    static func convolution() -> (Graph, [String: Value]) {
        var random = SeededGenerator(seed: 11)
        let w = Tensor.random([32, 16, 3, 3], using: &random)
        let graph = Graph(
            name: "conv", inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, [1, 16, 24, 24])))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: ["w": w],
            nodes: [
                Node(
                    name: "conv", layer: ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1])),
                    inputs: ["x", "w"], outputs: ["y"])
            ])
        return (graph, ["x": .tensor(Tensor.random([1, 16, 24, 24], using: &random))])
    }

    /// Tactics sum in different orders, so outputs agree to float32 rounding, not bit for bit.
    static func close(_ got: [String: Value], _ want: [String: Value]) -> Bool {
        guard let g = got["y"], let w = want["y"] else { return false }
        return Comparison.mismatch(g, w, rtol: 1e-4, atol: 1e-5) == nil
    }

    @Test func theTunerChoosesOncePerSignatureAndTheChoiceIsFollowed() throws {
        let (graph, feeds) = Self.convolution()
        let reference = try Builder.build(graph, device: CPUDevice(options: .untuned)).makeContext().run(feeds)

        let tuned = CPUDevice(options: CPUOptions(level: 2, minimumTunedWork: 0))
        let engine = try Builder.build(graph, device: tuned)
        let first = try engine.makeContext().run(feeds)
        #expect(tuned.tactics.count == 1)
        let (signature, choice) = try #require(tuned.tactics.first)
        #expect(signature.hasPrefix("cpu.conv float x=[1, 16, 24, 24]"))
        #expect(GemmTactic(named: choice) != nil)
        #expect(tuned.tuner.timedCandidates == min(4, GemmTactic.candidates.count))
        #expect(tuned.tuner.rejections.isEmpty)
        _ = try engine.makeContext().run(feeds)
        #expect(
            tuned.tuner.timedCandidates == min(4, GemmTactic.candidates.count), "a known signature is not timed again")
        #expect(Self.close(first, reference))

        // A device that is told the choice (a plan's, a timing cache's) follows it and times nothing.
        let portable = GemmTactic(.portable6x8, kc: 128).description
        let told = CPUDevice(options: CPUOptions(level: 2, minimumTunedWork: 0))
        told.preloadTactics([signature: portable])
        let followed = try Builder.build(graph, device: told).makeContext().run(feeds)
        #expect(told.tuner.timedCandidates == 0)
        #expect(told.tactics == [signature: portable])
        #expect(Self.close(followed, reference))

        // A tactic this CPU cannot run takes the untimed choice.
        let foreign = CPUDevice(options: CPUOptions(level: 2, minimumTunedWork: 0))
        foreign.preloadTactics([signature: "cpu.gemm.avx9.6x16.kc256"])
        let fallback = try Builder.build(graph, device: foreign).makeContext().run(feeds)
        #expect(foreign.tuner.timedCandidates == 0)
        #expect(Self.close(fallback, reference))
    }

    /// A candidate whose output differs from the portable kernel's is rejected, with the reason kept.
    @Test func aCandidateThatComputesSomethingElseIsRejected() throws {
        let tuner = GemmTuner(options: CPUOptions(level: 5, minimumTunedWork: 0))
        let bad = try #require(GemmTactic.candidates.first { $0 != .portable })
        let chosen = try tuner.tactic(signature: "test", work: 1) { tactic in
            Tensor(shape: [4], scalars: tactic == bad ? [1, 2, 3, 5] as [Float] : [1, 2, 3, 4])
        }
        #expect(chosen != bad)
        #expect(tuner.rejections.count == 1)
        #expect(tuner.rejections.first?.hasPrefix("test: \(bad) (relative error") == true)
        #expect(tuner.tactics == ["test": chosen.description])
    }

    @Test func levelZeroAndSmallLayersTimeNothing() throws {
        let (graph, feeds) = Self.convolution()
        let untuned = CPUDevice(options: .untuned)
        _ = try Builder.build(graph, device: untuned).makeContext().run(feeds)
        #expect(untuned.tactics.isEmpty)
        let small = CPUDevice(options: CPUOptions(level: 3, minimumTunedWork: 1 << 40))
        _ = try Builder.build(graph, device: small).makeContext().run(feeds)
        #expect(small.tactics.isEmpty)
        #expect(small.tuner.timedCandidates == 0)
    }

    /// A build with a profile runs the graph at the profile's shapes, so the plan carries the choices, and an
    /// engine loaded from the plan follows them without timing.
    @Test func aBuiltPlanCarriesTheChoices() throws {
        let (graph, feeds) = Self.convolution()
        let device = CPUDevice(options: CPUOptions(level: 1, minimumTunedWork: 0))
        var config = BuilderConfig()
        config.profiles = [
            ShapeProfile(inputs: [.init(name: "x", min: [1, 16, 24, 24], opt: [1, 16, 24, 24], max: [1, 16, 24, 24])])
        ]
        let engine = try Builder.build(graph, device: device, config: config)
        #expect(device.tactics.count == 1, "the build chose before any inference")
        let plan = try EnginePlan(decoding: try engine.plan(options: BuildOptions()).encoded())
        #expect(plan.tactics == device.tactics)
        let loading = CPUDevice(options: CPUOptions(level: 1, minimumTunedWork: 0))
        let loaded = try Engine(plan: plan, device: loading)
        let want = try engine.makeContext().run(feeds)
        let got = try loaded.makeContext().run(feeds)
        #expect(loading.tuner.timedCandidates == 0)
        #expect(Comparison.differingOutputs(want, got, names: ["y"]) == [])
    }
}
