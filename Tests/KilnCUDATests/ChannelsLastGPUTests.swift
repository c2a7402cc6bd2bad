import Foundation
import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Channels-last convolutions and pooling (`[N, H, W, C]`, weights `[M, kh, kw, C/group]`) in float16 and
/// bfloat16 (and float32 for what float32 engines run channels-last) against the CPU reference, which runs them channels-first between two copies: cuDNN with NHWC
/// descriptors, 1×1 convolutions as one product, the depthwise kernel at each vector width, and pooling.
@Suite struct ChannelsLastGPUTests {
    static let cases: [GPUCase] = {
        var cases: [GPUCase] = []
        func conv(_ p: ConvolutionParameters, _ epilogue: Epilogue = .init()) -> ConvolutionLayer {
            ConvolutionLayer(p, epilogue: epilogue, channelsLast: true)
        }
        func add(
            _ name: String, _ layer: any Layer, _ inputs: [InputSpec], float32: Bool = false
        ) {
            for dtype in (float32 ? [DType.float32] : []) + [.float16, .bfloat16] {
                var c = GPUCase(name: name + " (nhwc)", layer: layer, inputs: inputs, dtype: dtype)
                switch dtype {
                case .float32: (c.rtol, c.atol) = (1e-4, 1e-5)
                case .float16: (c.rtol, c.atol) = (4e-3, 2e-3)
                default: (c.rtol, c.atol) = (3e-2, 1.5e-2)
                }
                cases.append(c)
            }
        }
        add(
            "conv 3x3 bias residual relu (cuDNN)",
            conv(.init(pads: [1, 1, 1, 1]), .init(residual: true, activation: .relu)),
            [.float([2, 9, 9, 8]), .float([16, 3, 3, 8]), .float([16]), .float([2, 9, 9, 16])])
        add(
            "conv 3x3 stride 2 bias clip (cuDNN, then the pointwise epilogue)",
            conv(.init(strides: [2, 2], pads: [1, 1, 1, 1]), .init(activation: .clip(min: 0, max: 6))),
            [.float([2, 11, 10, 16], -3...3), .float([24, 3, 3, 16]), .float([24])])
        add(
            "conv 7x7 stride 2, 3 input channels (a stem)", conv(.init(strides: [2, 2], pads: [3, 3, 3, 3])),
            [.float([2, 20, 20, 3]), .float([8, 7, 7, 3])])
        add(
            "conv 1x1 bias residual relu (one product)", conv(.init(), .init(residual: true, activation: .relu)),
            [.float([2, 7, 9, 24]), .float([40, 1, 1, 24]), .float([40]), .float([2, 7, 9, 40])], float32: true)
        add(
            "conv 1x1 bias relu6 (product, then the pointwise epilogue)",
            conv(.init(), .init(activation: .clip(min: 0, max: 6))),
            [.float([3, 5, 5, 16], -3...3), .float([8, 1, 1, 16]), .float([8])])
        add(
            "conv 1x1 stride 2 (the pixels copied together, then one product)", conv(.init(strides: [2, 2])),
            [.float([2, 8, 8, 16]), .float([32, 1, 1, 16])], float32: true)
        add(
            "conv 1x1 stride 2x3 on odd sizes, bias residual relu",
            conv(.init(strides: [2, 3]), .init(residual: true, activation: .relu)),
            [.float([2, 9, 11, 8]), .float([16, 1, 1, 8]), .float([16]), .float([2, 5, 4, 16])], float32: true)
        add(
            "conv depthwise 3x3 stride 2 bias clip, 8 channels a thread",
            conv(.init(strides: [2, 2], pads: [1, 1, 1, 1], group: 16), .init(activation: .clip(min: 0, max: 6))),
            [.float([2, 10, 10, 16]), .float([16, 3, 3, 1]), .float([16])], float32: true)
        add(
            "conv depthwise 3x3 bias residual relu, 2 channels a thread",
            conv(.init(pads: [1, 1, 1, 1], group: 6), .init(residual: true, activation: .relu)),
            [.float([3, 13, 11, 6]), .float([6, 3, 3, 1]), .float([6]), .float([3, 13, 11, 6])])
        add(
            "conv depthwise 5x5 dilated, odd channels, no bias",
            conv(.init(dilations: [2, 1], pads: [4, 2, 4, 2], group: 5)),
            [.float([1, 9, 8, 5]), .float([5, 5, 5, 1])])
        func clamped(_ layer: ConvolutionLayer, _ high: Float) -> ConvolutionLayer {
            var layer = layer
            layer.inputMax = high
            return layer
        }
        add(
            "conv depthwise 3x3, input clamped at 0.5 as it loads",
            clamped(conv(.init(pads: [1, 1, 1, 1], group: 16), .init(activation: .relu)), 0.5),
            [.float([2, 9, 9, 16]), .float([16, 3, 3, 1]), .float([16])])
        add(
            "conv 3x3, input clamped at 0.3 (a clamp kernel, then cuDNN)",
            clamped(conv(.init(pads: [1, 1, 1, 1])), 0.3), [.float([2, 6, 7, 8]), .float([8, 3, 3, 8])])
        add(
            "conv 1x1, input clamped at 0 (a clamp kernel, then the product)", clamped(conv(.init()), 0),
            [.float([2, 5, 5, 8]), .float([16, 1, 1, 8]), .float([16])])
        add(
            "conv 1x1 stride 2, input clamped at 0 (clamp, pixel copy, product)",
            clamped(conv(.init(strides: [2, 2])), 0), [.float([2, 7, 7, 8]), .float([16, 1, 1, 8])], float32: true)
        add(
            "conv grouped, 2 channels per group (cuDNN)", conv(.init(pads: [1, 1, 1, 1], group: 4)),
            [.float([2, 6, 6, 8]), .float([8, 3, 3, 2])])
        add(
            "max pool 3x3 stride 2",
            PoolLayer(
                op: .max, window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]), channelsLast: true),
            [.float([2, 11, 11, 12])], float32: true)
        add(
            "max pool 3x3 stride 2, 8 channels a thread",
            PoolLayer(
                op: .max, window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]), channelsLast: true),
            [.float([2, 12, 13, 40])])
        add(
            "average pool 3x3 padded, padding not counted",
            PoolLayer(
                op: .average(countIncludePad: false), window: PoolGeometry(kernel: [3, 3], pads: [1, 1, 1, 1]),
                channelsLast: true),
            [.float([2, 7, 6, 12])])
        add(
            "conv depthwise 3x3 stride 2, 4 channels a thread",
            conv(.init(strides: [2, 2], pads: [1, 1, 1, 1], group: 12)),
            [.float([1, 9, 9, 12]), .float([12, 3, 3, 1]), .float([12])])
        add(
            "average pool 2x2 with padding counted",
            PoolLayer(
                op: .average(countIncludePad: true), window: PoolGeometry(kernel: [2, 2], pads: [1, 1, 0, 0]),
                channelsLast: true),
            [.float([2, 5, 6, 7])])
        add(
            "average pool 3x3 stride 2 ceil mode, padding counted up to the padded end",
            PoolLayer(
                op: .average(countIncludePad: true),
                window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: true),
                channelsLast: true),
            [.float([2, 8, 9, 16])])
        add(
            "global average pool",
            PoolLayer(op: .average(countIncludePad: false), window: nil, channelsLast: true), [.float([2, 7, 7, 40])])
        add("global max pool", PoolLayer(op: .max, window: nil, channelsLast: true), [.float([3, 4, 5, 9])])
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUReference(_ c: GPUCase) throws {
        try expectGPUMatchesCPU(c)
    }

    /// A float16 CNN built for the GPU goes channels-last (convolutions, pooling, one transpose in and one out)
    /// and matches the float32 CPU engine within float16's error.
    @Test(.enabled(if: gpuUsable)) func aFloat16NetworkRunsChannelsLast() throws {
        var gen = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970))
        var n = NetworkBuilder(name: "cnn")
        let x = n.addInput("x", .float32, [4, 3, 32, 32])
        func constant(_ name: String, _ shape: [Int]) -> NetworkBuilder.Value {
            n.addConstant(name, .random(shape, in: -0.3...0.3, using: &gen))
        }
        let stem = try n.relu(
            try n.convolution(
                x, weights: constant("w1", [16, 3, 3, 3]), bias: constant("b1", [16]), strides: [2, 2],
                pads: [1, 1, 1, 1]))
        let pooled = try n.add(
            PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])), [stem],
            name: "pool")[0]
        let c2 = try n.relu(
            try n.convolution(pooled, weights: constant("w2", [32, 16, 1, 1]), bias: constant("b2", [32])))
        let dw = try n.convolution(
            c2, weights: constant("w3", [32, 1, 3, 3]), bias: constant("b3", [32]), pads: [1, 1, 1, 1], group: 32)
        let c4 = try n.convolution(dw, weights: constant("w4", [16, 32, 1, 1]), bias: constant("b4", [16]))
        let sum = try n.relu(try n.add(c4, pooled))
        let logits = try n.matMul(try n.flatten(try n.globalAveragePool(sum)), constant("w5", [16, 10]))
        try n.markOutput(logits, as: "y")
        let graph = try n.build()

        var config = BuilderConfig()
        config.half = HalfConfig(dtype: .float16)
        let engine = try Builder.build(graph, device: try sharedGPU(), config: config)
        let convolutions = engine.graph.nodes.compactMap { $0.layer as? ConvolutionLayer }
        #expect(convolutions.count == 4 && convolutions.allSatisfy(\.channelsLast), "\(engine.graph.textForm())")
        #expect(engine.graph.nodes.filter { $0.layer is TransposeLayer }.count == 2, "\(engine.graph.textForm())")
        let input = Tensor.random([4, 3, 32, 32], in: -1...1, using: &gen)
        let reference = try Builder.build(graph, device: CPUDevice(threads: 2)).makeContext().run(["x": .tensor(input)])
        let got = try engine.makeContext().run(["x": .tensor(input)])
        let (g, w) = (try #require(got["y"]).asTensor(), try #require(reference["y"]).asTensor())
        let error = FloatDifference(g.scalars(as: Float.self), w.scalars(as: Float.self)).relative
        #expect(error < 5e-3, "relative error \(error) against float32")
    }
}

/// How channels-last convolutions lower (no GPU needed), and an NVRTC compile of the depthwise and pooling
/// kernels.
@Suite struct ChannelsLastLoweringTests {
    func lower(
        _ layer: ConvolutionLayer, _ inputs: [[Int]], _ output: [Int], dtype: DType = .float16
    ) throws
        -> CUDALowering
    {
        let node = Node(name: "n", layer: layer, inputs: inputs.indices.map { "i\($0)" }, outputs: ["y"])
        let info = CUDANodeInfo(
            node: node, inputs: inputs.map { TensorType(dtype, dims: $0) }, outputs: [TensorType(dtype, dims: output)],
            constants: inputs.map { _ in nil }, architecture: 90, options: CUDAOptions())
        return try CUDAConvolutionLowering.lower(layer, info)
    }

    @Test func oneByOneIsOneProductOverEveryPixel() throws {
        let layer = ConvolutionLayer(.init(), epilogue: .init(residual: true, activation: .relu), channelsLast: true)
        let lowering = try lower(layer, [[2, 7, 9, 24], [40, 1, 1, 24], [40], [2, 7, 9, 40]], [2, 7, 9, 40])
        guard lowering.steps.count == 1, case .matMul(let step) = lowering.steps[0] else {
            Issue.record("expected one product, got \(lowering.steps)")
            return
        }
        #expect((step.m, step.n, step.k, step.batch) == (2 * 7 * 9, 40, 24, 1))
        #expect(step.transposeB && !step.transposeA && step.bias == .input(2) && step.c == .input(3))
        #expect(step.beta == 1 && step.activation == .relu && step.dtype == .float16)
    }

    @Test func stridedOneByOneCopiesItsPixelsThenOneProduct() throws {
        let layer = ConvolutionLayer(.init(strides: [2, 2]), epilogue: .init(activation: .relu), channelsLast: true)
        let lowering = try lower(layer, [[2, 9, 9, 16], [32, 1, 1, 16], [32]], [2, 5, 5, 32], dtype: .float32)
        guard case .matMul(let step)? = lowering.steps.last else {
            Issue.record("expected a product last, got \(lowering.steps)")
            return
        }
        #expect(lowering.steps.count >= 2 && lowering.scratchBytes == [2 * 5 * 5 * 16 * 4])
        #expect(step.a == .scratch(0) && (step.m, step.n, step.k) == (50, 32, 16) && step.activation == .relu)
        // An input clamp takes scratch 0; the pixels go to scratch 1.
        var clamped = layer
        clamped.inputMax = 6
        let both = try lower(clamped, [[2, 9, 9, 16], [32, 1, 1, 16], [32]], [2, 5, 5, 32], dtype: .float32)
        guard case .matMul(let product)? = both.steps.last else {
            Issue.record("expected a product last, got \(both.steps)")
            return
        }
        #expect(product.a == .scratch(1) && both.scratchBytes == [2 * 9 * 9 * 16 * 4, 2 * 5 * 5 * 16 * 4])
    }

    /// float32 engines keep dense windowed convolutions channels-first, but for stems and strided ones Kiln's
    /// split-TF32 kernel takes (whole slices of 32 channels, Ampere or newer), and run the rest channels-last.
    @Test func float32ChannelsLastIsForProductsDepthwiseStemsAndPooling() throws {
        func runs(_ layer: any Layer, _ dtype: DType = .float32, channels: Int = 64, architecture: Int = 90) -> Bool {
            CUDAHalfPrecision.runsChannelsLast(
                Node(name: "n", layer: layer, inputs: ["x", "w"], outputs: ["y"]),
                input: TensorType(dtype, dims: [8, channels, 56, 56]), architecture: architecture)
        }
        #expect(runs(ConvolutionLayer(.init(kernelShape: [1, 1], strides: [2, 2]))))
        #expect(runs(ConvolutionLayer(.init(kernelShape: [3, 3], pads: [1, 1, 1, 1], group: 32))))
        let dense = ConvolutionLayer(.init(kernelShape: [3, 3], pads: [1, 1, 1, 1]))
        #expect(!runs(dense) && !runs(dense, architecture: 80))
        let strided = ConvolutionLayer(.init(kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]))
        #expect(runs(strided))
        #expect(!runs(strided, channels: 48) && !runs(strided, architecture: 75))
        #expect(runs(ConvolutionLayer(.init(kernelShape: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3])), channels: 3))
        #expect(
            !runs(ConvolutionLayer(.init(kernelShape: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3])), channels: 6))
        #expect(runs(ConvolutionLayer(.init(kernelShape: [3, 3], pads: [1, 1, 1, 1])), .float16))
        #expect(runs(PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [2, 2]))))
        #expect(!runs(ConvolutionLayer(.init(kernelShape: [1, 1])), .float64))
        // TF32 convolutions run on tensor cores, channels-last like 16-bit ones.
        #expect(
            CUDAHalfPrecision.runsChannelsLast(
                Node(
                    name: "n", layer: ConvolutionLayer(.init(kernelShape: [3, 3], pads: [1, 1, 1, 1])),
                    inputs: ["x", "w"], outputs: ["y"]),
                input: TensorType(.float32, dims: [8, 64, 56, 56]), architecture: 90, tf32: true))
    }

    @Test func otherConvolutionsAreCuDNNWithNHWCDescriptors() throws {
        let layer = ConvolutionLayer(
            .init(strides: [2, 2], pads: [1, 1, 1, 1]), epilogue: .init(activation: .clip(min: 0, max: 6)),
            channelsLast: true)
        let lowering = try lower(layer, [[2, 11, 10, 16], [24, 3, 3, 16], [24]], [2, 6, 5, 24])
        guard case .convolution(let step) = lowering.steps.first else {
            Issue.record("expected a cuDNN step, got \(lowering.steps)")
            return
        }
        #expect(step.channelsLast && step.activation == nil && lowering.steps.count == 2)
        #expect(step.inputShape == [2, 16, 11, 10] && step.weightShape == [24, 16, 3, 3])
        #expect(step.outputShape == [2, 24, 6, 5])
    }

    @Test func depthwiseAndPoolingKernelsCompile() throws {
        var sources: [CUDASource] = []
        for dtype in [DType.float32, .float16, .bfloat16] {
            for channels in [16, 12, 6, 5] {
                let layer = ConvolutionLayer(
                    .init(pads: [1, 1, 1, 1], group: channels), epilogue: .init(activation: .clip(min: 0, max: 6)),
                    channelsLast: true)
                let lowering = try lower(
                    layer, [[2, 8, 8, channels], [channels, 3, 3, 1], [channels]], [2, 8, 8, channels], dtype: dtype)
                guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
                    Issue.record("expected the depthwise kernel, got \(lowering.steps)")
                    continue
                }
                sources.append(launch.source)
            }
        }
        // float32 takes 4 channels a thread for both 16 and 12 channels: 11 distinct kernels.
        #expect(Set(sources.map(\.name)).count == 11)
        for dtype in [DType.float32, .float16, .bfloat16] {
            for op in [PoolLayer.Op.max, .average(countIncludePad: false), .average(countIncludePad: true)] {
                let layer = PoolLayer(
                    op: op, window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
                    channelsLast: true)
                let launch = try #require(try CUDAChannelsLastPool.launch(layer, shape: [2, 40, 9, 9], dtype: dtype))
                sources.append(launch.source)
            }
        }
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): the channels-last kernels were NOT compile-checked") {
                Issue.record("NVRTC unavailable")
            }
            return
        }
        for source in sources {
            let cubin = try nvrtc.compile(source, architecture: 90)
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(source.name)")
        }
    }
}
