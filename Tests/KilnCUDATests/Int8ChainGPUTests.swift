import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA
@testable import KilnRuntime

/// An int8 network built for the GPU keeps its activations int8 between the convolutions the warpgroup kernel
/// takes (`Int8Chaining`, Hopper): the chain matches the CPU reference kernels running the same engine graph
/// and stays near float32.
@Suite struct Int8ChainGPUTests {
    /// A stem over 3 channels (the direct stem kernel, reading the quantized image channels-first) and its max
    /// pool, a bottleneck block with a downsampling shortcut and a strided 3x3 after it, 64 and 128 channels.
    static func network(_ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "bottleneck")
        let image = n.addInput("x", .float32, [4, 3, 28, 28])
        func conv(
            _ input: NetworkBuilder.Value, _ shape: [Int], strides: [Int] = [], pads: [Int] = [], _ name: String
        ) throws -> NetworkBuilder.Value {
            let fanIn = Double(shape[1] * shape[2] * shape[3])
            let scale = Float(2 / fanIn.squareRoot())
            let weights = Tensor.random(shape, in: -scale...scale, using: &gen)
            return try n.convolution(
                input, weights: n.addConstant(name + ".w", weights),
                bias: n.addConstant(name + ".b", .random([shape[0]], in: -0.1...0.1, using: &gen)), strides: strides,
                pads: pads)
        }
        let stem = try n.relu(try conv(image, [64, 3, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], "stem"))
        let x = try n.maxPool(stem, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        let a = try n.relu(try conv(x, [64, 64, 1, 1], "a"))
        let b = try n.relu(try conv(a, [64, 64, 3, 3], pads: [1, 1, 1, 1], "b"))
        let sum = try n.relu(try n.add(try conv(b, [128, 64, 1, 1], "c"), try conv(x, [128, 64, 1, 1], "shortcut")))
        let d = try n.relu(try conv(sum, [128, 128, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], "d"))
        let logits = try n.matMul(
            try n.flatten(try n.globalAveragePool(d)), n.addConstant("fc", .random([128, 10], using: &gen)))
        try n.markOutput(logits, as: "y")
        return try n.build()
    }

    /// `network` (input `x` [4, 3, 28, 28], output `y`) built on the GPU in int8 (with `half` as well, if
    /// given) from two calibration batches; `check` inspects the engine. Then its output on fresh inputs is
    /// compared with the CPU's reference kernels running the same engine graph (the kernel rounds
    /// acc * alpha + beta in one step where the reference rounds each operation, so an int8 value may differ by
    /// one unit and carry on) and with the float32 network.
    static func buildAndCompare(
        _ network: (inout SeededGenerator) throws -> Graph, half: DType? = nil,
        check: (Engine, CUDADevice) throws -> Void
    ) throws {
        let seed = SeededGenerator.testSeed()
        var gen = SeededGenerator(seed: seed)
        let graph = try network(&gen)
        let data = (0..<2).map { _ in ["x": Tensor.random([4, 3, 28, 28], in: -1...1, using: &gen)] }
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: data)
        config.half = half.map { HalfConfig(dtype: $0) }
        let gpu = try sharedGPU()
        let engine = try Builder.build(graph, device: gpu, config: config)
        try check(engine, gpu)
        let input = Tensor.random([4, 3, 28, 28], in: -1...1, using: &gen)
        func output(_ engine: Engine) throws -> [Float] {
            try #require(try engine.makeContext().run(["x": .tensor(input)])["y"]).asTensor().scalars(as: Float.self)
        }
        let got = try output(engine)
        let label = "\(half.map { "\($0), " } ?? "")seed \(seed)"
        let reference = try output(try Engine(graph: engine.graph, device: CPUDevice(threads: 2)))
        let error = FloatDifference(got, reference).relative
        #expect(error < 1e-2, "\(label): relative error \(error) against the reference kernels")
        let float32 = try output(try Builder.build(graph, device: CPUDevice(threads: 2)))
        let quantization = FloatDifference(got, float32).relative
        #expect(quantization < 0.05, "\(label): relative error \(quantization) against float32")
    }

    @Test(.enabled(if: gpuUsable)) func aChainMatchesTheReferenceKernels() throws {
        try Self.buildAndCompare(Self.network) { engine, gpu in
            let chained = engine.graph.nodes.compactMap { $0.layer as? QuantizedConvolutionLayer }.filter(
                \.writesQuantized)
            let hopper = gpu.context.computeCapability == 90 && gpu.context.hasIm2colTensorMaps
            #expect(chained.count == (hopper ? 6 : 0), "\(engine.graph.textForm())")
            #expect(chained.allSatisfy { $0.channelsLast })
            let pools = engine.graph.nodes.filter {
                ($0.layer as? PoolLayer)?.op == .max && engine.graph.type(of: $0.inputs[0])?.tensorType?.dtype == .int8
            }
            #expect(pools.count == (hopper ? 1 : 0), "the stem's max pool runs on its int8 output")
            let global = engine.graph.nodes.filter { ($0.layer as? PoolLayer)?.dequantizing != nil }
            #expect(global.count == (hopper ? 1 : 0), "the global pool reads the chain's int8 output")
            let stem = engine.graph.nodes.first { ($0.layer as? QuantizedConvolutionLayer)?.channelsFirstInput == true }
            #expect((stem != nil) == hopper, "the stem reads the quantized image channels-first")
            #expect(
                !engine.graph.nodes.contains {
                    $0.layer is TransposeLayer && $0.outputs == stem?.inputs.prefix(1).map { $0 }
                })
        }
    }
}

/// int8 and float16 in one engine on the GPU: a depthwise convolution (never int8) between two chains runs in
/// float16, so the first chain ends in a dequantize to float16 and the second starts by quantizing float16; the
/// global pool and the classifier (a matMul, which would not chain) run in float16. Checked against the CPU
/// reference kernels running the same engine graph and against float32.
@Suite struct Int8HalfGPUTests {
    static func network(_ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "mixed")
        let image = n.addInput("x", .float32, [4, 3, 28, 28])
        func conv(
            _ input: NetworkBuilder.Value, _ shape: [Int], group: Int = 1, pads: [Int] = [], _ name: String
        )
            throws -> NetworkBuilder.Value
        {
            let scale = Float(2 / Double(shape[1] * shape[2] * shape[3]).squareRoot())
            return try n.relu(
                try n.convolution(
                    input, weights: n.addConstant(name + ".w", .random(shape, in: -scale...scale, using: &gen)),
                    bias: n.addConstant(name + ".b", .random([shape[0]], in: -0.1...0.1, using: &gen)), pads: pads,
                    group: group))
        }
        let stem = try conv(image, [64, 3, 3, 3], pads: [1, 1, 1, 1], "stem")
        let a = try conv(stem, [64, 64, 1, 1], "a")
        let depthwise = try conv(a, [64, 1, 3, 3], group: 64, pads: [1, 1, 1, 1], "dw")
        let b = try conv(depthwise, [128, 64, 3, 3], pads: [1, 1, 1, 1], "b")
        let logits = try n.matMul(
            try n.flatten(try n.globalAveragePool(b)), n.addConstant("fc", .random([128, 10], using: &gen)))
        try n.markOutput(logits, as: "y")
        return try n.build()
    }

    @Test(.enabled(if: gpuUsable), arguments: [DType.float16, .bfloat16])
    func chainsMeet16BitLayers(_ dtype: DType) throws {
        try Int8ChainGPUTests.buildAndCompare(Self.network, half: dtype) { engine, gpu in
            let g = engine.graph
            func dtypeOf(_ value: String) -> DType? { g.type(of: value)?.tensorType?.dtype }
            #expect(engine.precision?.precision == "int8+\(dtype.onnxName)")
            let hopper = gpu.context.computeCapability == 90 && gpu.context.hasIm2colTensorMaps
            #expect(engine.precision?.int8LayerCount == (hopper ? 3 : 0), "stem, a and b, where they chain")
            let floatConvolutions = g.nodes.filter { $0.kind == ConvolutionLayer.kind }
            #expect(
                floatConvolutions.count == (hopper ? 1 : 4)
                    && floatConvolutions.allSatisfy { dtypeOf($0.inputs[0]) == dtype })
            let classifier = g.nodes.filter { $0.kind == MatMulLayer.kind }
            #expect(classifier.count == 1 && classifier.allSatisfy { dtypeOf($0.inputs[0]) == dtype })
            if hopper {
                #expect(g.nodes.contains { $0.layer is DequantizeLayer && dtypeOf($0.outputs[0]) == dtype })
                #expect(g.nodes.contains { $0.layer is QuantizeLayer && dtypeOf($0.inputs[0]) == dtype })
            }
        }
    }
}

/// Convolutions over fewer than 64 channels chain through the direct stem kernel (`kiln_i8_stem`: strided,
/// dilated, padded and patch-embedding windows, tiles past the output's edges, two blocks of output channels) or,
/// where its weights would not fit, as int8 patches (`kiln_int8_patches_staged`, rows wider than one block's 128
/// pixels), against the CPU reference kernels on the same engine graph.
@Suite struct Int8PatchesGPUTests {
    struct Stem: Sendable, CustomStringConvertible {
        var image: [Int]
        var weights: [Int]
        var strides: [Int]
        var pads: [Int]
        var dilations: [Int] = [1, 1]
        var description: String { "X \(image) W \(weights) strides \(strides) pads \(pads) dilations \(dilations)" }
    }

    static let stems = [
        Stem(image: [2, 3, 40, 300], weights: [64, 3, 7, 7], strides: [2, 2], pads: [3, 3, 3, 3]),
        Stem(image: [2, 5, 9, 30], weights: [64, 5, 3, 3], strides: [1, 1], pads: [2, 2, 2, 2], dilations: [2, 2]),
        Stem(image: [3, 16, 16, 16], weights: [128, 16, 4, 4], strides: [4, 4], pads: [0, 0, 0, 0]),
        Stem(image: [2, 16, 20, 300], weights: [64, 16, 7, 7], strides: [2, 2], pads: [3, 3, 3, 3]),
    ]

    @Test(.enabled(if: gpuUsable), arguments: stems) func aStemsPatchesMatchTheReference(_ stem: Stem) throws {
        let seed = SeededGenerator.testSeed()
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "stem")
        let image = n.addInput("x", .float32, stem.image.map { Dim.value($0) })
        let fanIn = Float(stem.weights.dropFirst().reduce(1, *))
        let weights = n.addConstant(
            "w", .random(stem.weights, in: -2 / fanIn.squareRoot()...2 / fanIn.squareRoot(), using: &gen))
        let bias = n.addConstant("b", .random([stem.weights[0]], in: -0.1...0.1, using: &gen))
        let y = try n.relu(
            try n.add(
                ConvolutionLayer(
                    ConvolutionParameters(strides: stem.strides, dilations: stem.dilations, pads: stem.pads)),
                [image, weights, bias])[0])
        let m = stem.weights[0]
        let mix = try n.convolution(
            y, weights: n.addConstant("mix", .random([m, m, 1, 1], in: -0.2...0.2, using: &gen)))
        try n.markOutput(mix, as: "y")
        let graph = try n.build()
        let data = (0..<2).map { _ in ["x": Tensor.random(stem.image, in: -1...1, using: &gen)] }
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: data)
        let gpu = try sharedGPU()
        let engine = try Builder.build(graph, device: gpu, config: config)
        let hopper = gpu.context.computeCapability == 90 && gpu.context.hasIm2colTensorMaps
        let chained = engine.graph.nodes.compactMap { $0.layer as? QuantizedConvolutionLayer }.filter(\.writesQuantized)
        #expect(chained.count == (hopper ? 2 : 0), "\(stem)")
        let input = Tensor.random(stem.image, in: -1...1, using: &gen)
        func output(_ engine: Engine) throws -> [Float] {
            try #require(try engine.makeContext().run(["x": .tensor(input)])["y"]).asTensor().scalars(as: Float.self)
        }
        let reference = try output(try Engine(graph: engine.graph, device: CPUDevice(threads: 2)))
        let error = FloatDifference(try output(engine), reference).relative
        #expect(error < 1e-2, "seed \(seed), \(stem): relative error \(error) against the reference kernels")
    }
}

/// How a chained convolution and the quantize/dequantize at a chain's ends lower (no GPU needed).
@Suite struct Int8ChainLoweringTests {
    static func info(
        _ layer: any Layer, _ inputs: [TensorType?], _ output: TensorType, _ constants: [Tensor?]
    )
        -> CUDANodeInfo
    {
        let node = Node(name: "n", layer: layer, inputs: inputs.indices.map { "i\($0)" }, outputs: ["y"])
        return CUDANodeInfo(
            node: node, inputs: inputs, outputs: [output], constants: constants, architecture: 90,
            multiprocessors: 132, options: CUDAOptions())
    }

    /// Whether `launch` passes the float argument `value`.
    static func passes(_ value: Float, _ launch: CUDALaunch) -> Bool {
        launch.arguments.contains { argument in
            guard case .float32(let v) = argument else { return false }
            return v == value
        }
    }

    @Test func theScalesFoldIntoAlphaAndBeta() throws {
        let layer = QuantizedConvolutionLayer(
            ConvolutionParameters(pads: [1, 1, 1, 1]), input: .init(scale: 0.5),
            epilogue: .init(residual: true, activation: .relu), output: .init(scale: 0.25),
            residualQuantization: .init(scale: 0.125), writesQuantized: true, channelsLast: true)
        let scales = Tensor(shape: [64], scalars: (0..<64).map { Float($0 + 1) / 64 })
        let bias = Tensor(shape: [64], scalars: (0..<64).map { Float($0) })
        let lowering = try CUDAInt8WarpGroupConvolution.lower(
            layer,
            Self.info(
                layer,
                [
                    TensorType(.int8, dims: [2, 8, 8, 64]), TensorType(.int8, dims: [64, 3, 3, 64]),
                    TensorType(.float32, dims: [64]), TensorType(.float32, dims: [64]),
                    TensorType(.int8, dims: [2, 8, 8, 64]),
                ], TensorType(.int8, dims: [2, 8, 8, 64]), [nil, nil, scales, bias, nil]))
        #expect(lowering.steps.count == 1 && lowering.constants.count == 2)
        let alpha = lowering.constants[0].scalars(as: Float.self)
        let beta = lowering.constants[1].scalars(as: Float.self)
        #expect(alpha == (0..<64).map { Float($0 + 1) / 64 * 2 } && beta == (0..<64).map { Float($0) * 4 })
        guard case .launch(let launch) = lowering.steps[0] else {
            Issue.record("expected a launch, got \(lowering.steps)")
            return
        }
        #expect(launch.function.contains("kiln_i8_conv"), "\(launch.function)")
        #expect(Self.passes(0.5, launch), "the residual's scale over the output's")
    }

    @Test func whichConvolutionsChain() {
        func takes(
            _ x: [Int], _ w: [Int], pads: [Int] = [], group: Int = 1, _ activation: EpilogueActivation? = .relu
        )
            -> Bool
        {
            let layer = ConvolutionLayer(
                ConvolutionParameters(pads: pads, group: group), epilogue: .init(activation: activation))
            let node = Node(name: "n", layer: layer, inputs: ["x", "w"], outputs: ["y"])
            return CUDAInt8WarpGroupConvolution.takes(node, x: x, w: w, architecture: 90, im2col: true)
        }
        #expect(takes([64, 64, 56, 56], [64, 64, 3, 3], pads: [1, 1, 1, 1]))
        #expect(takes([64, 3, 224, 224], [64, 3, 7, 7], pads: [3, 3, 3, 3]), "a stem, on the direct kernel")
        #expect(takes([64, 16, 224, 224], [64, 16, 7, 7], pads: [3, 3, 3, 3]), "a long stem, as patches")
        #expect(!takes([64, 64, 56, 56], [96, 64, 1, 1]), "output channels not a multiple of 64")
        #expect(!takes([64, 64, 56, 56], [64, 32, 1, 1], group: 2), "grouped")
        #expect(!takes([64, 64, 56, 56], [64, 64, 1, 1], .sigmoid), "an activation other than ReLU")
        #expect(!takes([1, 48, 9, 9], [64, 48, 5, 5]), "patches longer than the limit")
    }

    /// The lowering of a chained convolution over `channels` channels with a `kernel` x `kernel` window, stride 2,
    /// into 64 channels, and its weights.
    static func lowerFewChannels(channels: Int, kernel: Int) throws -> (CUDALowering, Tensor) {
        let layer = QuantizedConvolutionLayer(
            ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1]), input: .init(scale: 0.5),
            epilogue: .init(activation: .relu), output: .init(scale: 0.25), writesQuantized: true, channelsLast: true)
        let count = 64 * kernel * kernel * channels
        let weights = Tensor(
            shape: [64, kernel, kernel, channels],
            scalars: (0..<count).map { Int8(truncatingIfNeeded: $0 % 200 - 100) })
        let scales = Tensor(shape: [64], scalars: [Float](repeating: 0.01, count: 64))
        let out = (9 + 2 - kernel) / 2 + 1
        let lowering = try CUDAInt8WarpGroupConvolution.lower(
            layer,
            Self.info(
                layer,
                [
                    TensorType(.int8, dims: [2, 9, 9, channels]),
                    TensorType(.int8, dims: [64, kernel, kernel, channels]), TensorType(.float32, dims: [64]),
                ], TensorType(.int8, dims: [2, out, out, 64]), [nil, weights, scales]))
        return (lowering, weights)
    }

    @Test func fewChannelsTakeTheDirectStemKernel() throws {
        let (lowering, weights) = try Self.lowerFewChannels(channels: 3, kernel: 3)
        guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
            Issue.record("expected one launch, got \(lowering.steps)")
            return
        }
        #expect(launch.function == "kiln_i8_stem_c3_k3x3_s2x2_d1x1_relu" && lowering.scratchBytes.isEmpty)
        // 9 taps of one word each (three channels and a zero), two window rows (6 words) a step of 8, in the order
        // the fragments read them: block, step, warp column, half, lane (g, t), fragments 2 half and 2 half + 1,
        // the step's words t and t + 4.
        let fragments = try #require(lowering.constants.last).scalars(as: Int8.self)
        #expect(fragments.count == 2 * 2048)
        let w = weights.scalars(as: Int8.self)
        var mismatches = 0
        for index in 0..<(fragments.count / 4) {
            let pair = index % 2
            let lane = index / 4 % 32
            let fragment = index / 2 % 2 + 2 * (index / 128 % 2)
            let wn = index / 256 % 2
            let step = index / 512
            let n = wn * 32 + fragment * 8 + lane / 4
            let slot = lane % 4 + 4 * pair
            let tap = 6 * step + slot
            for byte in 0..<4 {
                let expected = slot < 6 && tap < 9 && byte < 3 ? w[(n * 9 + tap) * 3 + byte] : 0
                if fragments[index * 4 + byte] != expected { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func aStemReadsItsInputChannelsFirstOnTheDirectKernel() throws {
        var layer = QuantizedConvolutionLayer(
            ConvolutionParameters(strides: [2, 2], pads: [3, 3, 3, 3]), input: .init(scale: 0.5),
            epilogue: .init(activation: .relu), output: .init(scale: 0.25), writesQuantized: true, channelsLast: true,
            channelsFirstInput: true)
        let weights = Tensor(shape: [64, 7, 7, 3], scalars: [Int8](repeating: 1, count: 64 * 147))
        let scales = Tensor(shape: [64], scalars: [Float](repeating: 0.01, count: 64))
        func lower() throws -> CUDALowering {
            try CUDAInt8WarpGroupConvolution.lower(
                layer,
                Self.info(
                    layer,
                    [
                        TensorType(.int8, dims: [2, 3, 30, 40]), TensorType(.int8, dims: [64, 7, 7, 3]),
                        TensorType(.float32, dims: [64]),
                    ], TensorType(.int8, dims: [2, 15, 20, 64]), [nil, weights, scales]))
        }
        let lowering = try lower()
        guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
            Issue.record("expected one launch, got \(lowering.steps)")
            return
        }
        #expect(launch.function == "kiln_i8_stem_c3_k7x7_s2x2_d1x1_nchw_relu")
        #expect(launch.arguments.contains(.dims([2, 30, 40, 15, 20, 64, 3, 3])), "N, H, W, Ho, Wo, M, pads")
        // A residual leaves the direct kernel, and nothing else reads channels-first.
        layer.epilogue.residual = true
        layer.residualQuantization = .init(scale: 0.25)
        #expect(throws: KilnError.self) { try lower() }
    }

    @Test func fewChannelsWithLongWindowsAreMultipliedAsPatches() throws {
        // 49 taps of 16 channels (4 words each): 25 steps, more than the stem kernel keeps.
        let (lowering, weights) = try Self.lowerFewChannels(channels: 16, kernel: 7)
        #expect(lowering.steps.count == 2 && lowering.scratchBytes == [2 * 3 * 3 * 832])
        // The weights as rows of 784 values, zero-padded to 832.
        let rows = try #require(lowering.constants.last)
        #expect(rows.shape == [64, 832])
        let values = rows.scalars(as: Int8.self)
        #expect(Array(values[832..<1616]) == Array(weights.scalars(as: Int8.self)[784..<1568]))
        #expect(values[1616..<1664].allSatisfy { $0 == 0 })
    }

    @Test func anUnchainedFormIsRefusedWithAReason() throws {
        let layer = QuantizedConvolutionLayer(
            ConvolutionParameters(), input: .init(scale: 0.5), output: .init(scale: 0.25), writesQuantized: true)
        #expect(throws: KilnError.self) {
            try CUDAInt8WarpGroupConvolution.lower(
                layer,
                Self.info(
                    layer,
                    [
                        TensorType(.int8, dims: [2, 64, 8, 8]), TensorType(.int8, dims: [64, 64, 1, 1]),
                        TensorType(.float32, dims: [64]),
                    ], TensorType(.int8, dims: [2, 64, 8, 8]),
                    [nil, nil, Tensor(shape: [64], scalars: [Float](repeating: 1, count: 64))]))
        }
    }

    /// A chain's max pool compares int8 bytes (four at a time) where its window has at most 16 taps; a larger
    /// window takes the kernel that computes in floats; channels-first int8 pooling has no kernel.
    @Test func int8MaxPoolingLowersToTheByteKernel() throws {
        func lower(_ kernel: [Int], channelsLast: Bool = true) throws -> CUDALowering {
            let pads = kernel.map { $0 / 2 } + kernel.map { $0 / 2 }
            let layer = PoolLayer(
                op: .max, window: PoolGeometry(kernel: kernel, strides: [2, 2], pads: pads), channelsLast: channelsLast)
            let (x, y) = channelsLast ? ([2, 8, 8, 64], [2, 4, 4, 64]) : ([2, 64, 8, 8], [2, 64, 4, 4])
            return try CUDAPoolLowering.lower(
                layer, Self.info(layer, [TensorType(.int8, dims: x)], TensorType(.int8, dims: y), [nil]))
        }
        for (kernel, function) in [([3, 3], "kiln_pool_nhwc_max_i8"), ([5, 5], "kiln_pool_nhwc")] {
            let lowering = try lower(kernel)
            guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
                Issue.record("expected one launch, got \(lowering.steps)")
                continue
            }
            #expect(launch.function == function, "\(kernel)")
        }
        #expect(throws: KilnError.self) { try lower([3, 3], channelsLast: false) }
    }

    /// A global average pool over a chain's int8 values (`DequantizedPooling`) is one kernel summing bytes.
    @Test func aDequantizingPoolSumsTheBytes() throws {
        let layer = PoolLayer(
            op: .average(countIncludePad: false), window: nil, channelsLast: true,
            dequantizing: .init(input: .init(scale: 0.25, zeroPoint: 3), output: .float16))
        let lowering = try CUDAPoolLowering.lower(
            layer,
            Self.info(
                layer, [TensorType(.int8, dims: [2, 7, 7, 64])], TensorType(.float16, dims: [2, 1, 1, 64]), [nil]))
        guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
            Issue.record("expected one launch, got \(lowering.steps)")
            return
        }
        #expect(launch.function == "kiln_pool_dequantized_i8_f16")
        #expect(Self.passes(0.25, launch) && Self.passes(3, launch))
        #expect(launch.arguments.contains(.int(49)) && launch.arguments.contains(.int(64)), "plane and channels")
        var channelsFirst = layer
        channelsFirst.channelsLast = false
        #expect(throws: KilnError.self) {
            try CUDAPoolLowering.lower(
                channelsFirst,
                Self.info(
                    channelsFirst, [TensorType(.int8, dims: [2, 64, 7, 7])], TensorType(.float16, dims: [2, 64, 1, 1]),
                    [nil]))
        }
    }

    /// Between int8 and float32, float16 or bfloat16 (an int8 + 16-bit build's chain ends); a 16-bit input
    /// only where the quantize divides in float32, as the kernel does.
    @Test func quantizeAndDequantizeAreOnePassWithTheirScale() throws {
        let scale = Tensor(shape: [], scalars: [Float(0.03)])
        var cases: [(any Layer, DType, DType, String)] = [
            (QuantizeLayer(outputType: .int8), .float32, .int8, "kiln_quantize_i8"),
            (DequantizeLayer(), .int8, .float32, "kiln_dequantize_i8"),
        ]
        for half in [DType.float16, .bfloat16] {
            cases += [
                (QuantizeLayer(outputType: .int8, precision: .float32), half, .int8, "kiln_quantize_i8_\(half)"),
                (DequantizeLayer(outputType: half), .int8, half, "kiln_dequantize_i8_\(half)"),
            ]
        }
        for (layer, from, to, function) in cases {
            let info = Self.info(
                layer, [TensorType(from, dims: [2, 5, 5, 64]), TensorType(.float32, dims: [])],
                TensorType(to, dims: [2, 5, 5, 64]), [nil, scale])
            let lower = try #require(CUDALoweringRegistry.all[layer.kind])
            let lowering = try lower(info)
            guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
                Issue.record("expected one launch, got \(lowering.steps)")
                continue
            }
            #expect(launch.function == function)
            #expect(Self.passes(0.03, launch))
        }
        // A 16-bit quantize that divides in 16 bits (ONNX's rule without a precision) has no kernel.
        let narrow = QuantizeLayer(outputType: .int8)
        let info = Self.info(
            narrow, [TensorType(.float16, dims: [64]), TensorType(.float32, dims: [])], TensorType(.int8, dims: [64]),
            [nil, scale])
        #expect(throws: KilnError.self) { try CUDALoweringRegistry.all[narrow.kind]?(info) }
    }
}
