import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// The host reference cuDNN candidates are checked against gives, at its sampled outputs, what the CPU
/// backend's convolution gives for the same operands (runs without a GPU).
@Suite struct SampledConvolutionTests {
    func cpu(_ layer: ConvolutionLayer, _ inputs: [String: Tensor]) throws -> [Float] {
        let names = ["x", "w", "b", "r"].filter { inputs[$0] != nil }
        let graph = Graph(
            name: "conv", inputs: names.map { GraphValue(name: $0, type: .tensor(inputs[$0]!.type)) },
            outputs: [GraphValue(name: "y", type: nil)],
            nodes: [Node(name: "conv", layer: layer, inputs: names, outputs: ["y"])])
        let engine = try Builder.build(graph, device: CPUDevice(threads: 2), config: BuilderConfig(optimize: false))
        let out = try engine.makeContext().run(inputs.mapValues(Value.tensor))
        return try #require(out["y"]).asTensor().withUnsafeBuffer(as: Float.self) { Array($0) }
    }

    /// Grouped, strided, padded and dilated, with bias, residual and ReLU.
    @Test func matchesTheCPUConvolution() throws {
        let (xs, ws, ys) = ([2, 6, 9, 8], [4, 3, 3, 2], [2, 4, 4, 5])
        let step = CUDAConvolution(
            x: .input(0), w: .input(1), bias: .input(2), residual: .input(3), y: .output(0), inputShape: xs,
            weightShape: ws, outputShape: ys, pads: [1, 1], strides: [2, 2], dilations: [2, 1], groups: 2,
            activation: .relu)
        let x = try CUDATacticTimer.randomValues(count: xs.reduce(1, *), seed: 1)
        let w = try CUDATacticTimer.randomValues(count: ws.reduce(1, *), seed: 2)
        let bias = try CUDATacticTimer.randomValues(count: 4, seed: 3)
        let residual = try CUDATacticTimer.randomValues(count: ys.reduce(1, *), seed: 4)
        let sample = SampledConvolution(step, count: 50)
        let expected = sample.reference(x: x, w: w, bias: bias, residual: residual, tf32: false)
        let layer = ConvolutionLayer(
            ConvolutionParameters(strides: [2, 2], dilations: [2, 1], pads: [1, 1, 1, 1], group: 2),
            epilogue: .init(residual: true, activation: .relu))
        let y = try cpu(
            layer,
            [
                "x": Tensor(shape: xs, scalars: x), "w": Tensor(shape: ws, scalars: w),
                "b": Tensor(shape: [4], scalars: bias), "r": Tensor(shape: ys, scalars: residual),
            ])
        #expect(y.count == ys.reduce(1, *))
        #expect(sample.relativeError(of: y, from: expected) < 1e-6)
        #expect(expected.contains { $0 > 0 } && expected.contains { $0 == 0 }, "relu clips some outputs")
        var wrong = y
        wrong[sample.offset(sample.entries[3], ys)] += 0.05
        #expect(sample.relativeError(of: wrong, from: expected) > sampledTolerance(.float32, terms: 18, tf32: false))
    }

    /// Channels-last storage (NHWC data, OHWI weights) reads the same logical convolution.
    @Test func channelsLastReadsTheSameConvolution() throws {
        let (xs, ws, ys) = ([1, 4, 5, 6], [3, 4, 3, 3], [1, 3, 5, 6])
        func step(_ last: Bool) -> CUDAConvolution {
            CUDAConvolution(
                x: .input(0), w: .input(1), bias: nil, residual: nil, y: .output(0), inputShape: xs, weightShape: ws,
                outputShape: ys, pads: [1, 1], strides: [1, 1], dilations: [1, 1], groups: 1, activation: nil,
                channelsLast: last)
        }
        let x = try CUDATacticTimer.randomValues(count: xs.reduce(1, *), seed: 5)
        let w = try CUDATacticTimer.randomValues(count: ws.reduce(1, *), seed: 6)
        /// [a, b, c, d] stored as [a, c, d, b].
        func nhwc(_ values: [Float], _ s: [Int]) -> [Float] {
            var out = [Float](repeating: 0, count: values.count)
            for i in 0..<s[0] {
                for j in 0..<s[1] {
                    for k in 0..<s[2] {
                        for l in 0..<s[3] {
                            out[((i * s[2] + k) * s[3] + l) * s[1] + j] = values[((i * s[1] + j) * s[2] + k) * s[3] + l]
                        }
                    }
                }
            }
            return out
        }
        let first = SampledConvolution(step(false), count: 20)
        let last = SampledConvolution(step(true), count: 20)
        let a = first.reference(x: x, w: w, bias: nil, residual: nil, tf32: false)
        let b = last.reference(x: nhwc(x, xs), w: nhwc(w, ws), bias: nil, residual: nil, tf32: false)
        #expect(a == b)
    }
}

/// On the GPU, every cuDNN algorithm that qualifies reproduces the host reference: the check rejects nothing
/// that is right (strict float32 3x3, TF32 with bias and ReLU either layout, float16 channels-last).
@Suite(.enabled(if: gpuUsable)) struct ConvolutionReferenceGPUTests {
    @Test func everyCandidateMatchesTheHostReference() throws {
        let device = try sharedGPU()
        let library = try CUDNN()
        func step(_ dtype: DType, last: Bool, bias: Bool) -> CUDAConvolution {
            CUDAConvolution(
                x: .input(0), w: .input(1), bias: bias ? .input(2) : nil, residual: nil, y: .output(0),
                inputShape: [4, 64, 28, 28], weightShape: [96, 64, 3, 3], outputShape: [4, 96, 14, 14],
                pads: [1, 1], strides: [2, 2], dilations: [1, 1], groups: 1, activation: bias ? .relu : nil,
                dtype: dtype, channelsLast: last)
        }
        let cases: [(CUDAConvolution, Bool)] = [
            (step(.float32, last: false, bias: false), false), (step(.float32, last: false, bias: true), true),
            (step(.float32, last: true, bias: true), true), (step(.float16, last: true, bias: true), false),
        ]
        var launched = 0
        for (step, tf32) in cases {
            let runner = try CUDAConvolutionRunner(step: step, library: library, allowTF32: tf32)
            let outcome = try runner.tune(context: device.context, runs: 1)
            #expect(outcome.rejected == 0, "\(step.dtype) tf32 \(tf32) nhwc \(step.channelsLast): \(outcome)")
            print("convolution reference check, \(step.dtype) tf32 \(tf32) nhwc \(step.channelsLast): \(outcome)")
            launched += outcome.launched
        }
        #expect(launched >= 2, "the check ran on at least two algorithms")
    }
}
