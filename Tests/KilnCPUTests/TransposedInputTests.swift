import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// `TransposedInput`: a channels-last 1×1 convolution after a channels-first layer becomes a product reading
/// that layer's output transposed, with the convolution's bias, residual and ReLU; outputs as before.
struct TransposedInputTests {
    /// The CPU laid out as a GPU lays out ResNet in float32: convolutions channels-last except stride-1 3×3
    /// ones (here the padded stride-1 ones), and 1×1 convolutions reading a channels-first input as it is.
    static func device() -> ChannelsLastCPU {
        ChannelsLastCPU(
            channelsLast: { node in
                guard let conv = node.layer as? ConvolutionLayer else { return node.layer is PoolLayer }
                return conv.parameters.pads.allSatisfy { $0 == 0 } || conv.parameters.strides.contains { $0 != 1 }
            }, transposedInput: true)
    }

    let seed = SeededGenerator.testSeed()

    /// A bottleneck: 1×1 (channels-last), 3×3 stride 1 (channels-first), then a 1×1 with the first one's output
    /// as its residual and a ReLU, and a stride-2 3×3 beside it reading the same channels-first output.
    static func network(_ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "bottleneck")
        let x = n.addInput("x", .float32, [.symbol("N"), 8, 6, 6])
        func constant(_ name: String, _ shape: [Int], _ gen: inout SeededGenerator) -> NetworkBuilder.Value {
            n.addConstant(name, .random(shape, in: -0.5...0.5, using: &gen))
        }
        let reduce = try n.relu(
            try n.convolution(x, weights: constant("w1", [8, 8, 1, 1], &gen), bias: constant("b1", [8], &gen)))
        let window = try n.relu(
            try n.convolution(
                reduce, weights: constant("w2", [8, 8, 3, 3], &gen), bias: constant("b2", [8], &gen),
                pads: [1, 1, 1, 1]))
        let expand = try n.convolution(
            window, weights: constant("w3", [8, 8, 1, 1], &gen), bias: constant("b3", [8], &gen))
        try n.markOutput(try n.relu(try n.add(expand, reduce)), as: "y")
        let side = try n.convolution(
            window, weights: constant("w4", [8, 8, 3, 3], &gen), strides: [2, 2], pads: [1, 1, 1, 1])
        try n.markOutput(try n.convolution(side, weights: constant("w5", [16, 8, 1, 1], &gen)), as: "z")
        return try n.build()
    }

    @Test func aOneByOneAfterAChannelsFirstLayerReadsItTransposed() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let engine = try Builder.build(graph, device: Self.device())
        let without = try Builder.build(
            graph, device: Self.device(), config: BuilderConfig(disabledPasses: [TransposedInput.name]))
        let plain = try Builder.build(graph, device: CPUDevice(threads: 2))
        let text = engine.graph.textForm()
        let products = engine.graph.nodes.compactMap { $0.layer as? MatMulLayer }
        // The first 1×1 reads the graph's input, the expansion the 3×3's output, both as they are.
        #expect(products.count == 2 && products.allSatisfy { $0.transposeA && $0.transposeB }, "\(text)")
        #expect(products.contains { $0.epilogue == Epilogue(residual: true, activation: .relu) }, "\(text)")
        // The stride-2 3×3 still reads the 3×3's channels-last copy, so that transpose stays; the input's goes.
        let transposes = { (e: Engine) in e.graph.nodes.filter { $0.layer is TransposeLayer }.count }
        #expect(transposes(engine) == transposes(without) - 1, "\(text)")
        #expect(engine.graph.initializers.values.contains { $0.shape == [8, 8] })
        for batch in [1, 3] {
            let x = Tensor.random([batch, 8, 6, 6], in: -1...1, using: &gen)
            try ChannelsLastTests.expectSameOutputs(engine, plain, x, ["y", "z"], "batch \(batch), seed \(seed)")
        }
    }

    @Test func withoutTheSideReaderTheTransposeGoes() throws {
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "pair")
        let x = n.addInput("x", .float32, [2, 8, 4, 4])
        let reduce = try n.convolution(x, weights: n.addConstant("w1", .random([8, 8, 1, 1], using: &gen)))
        let window = try n.convolution(
            reduce, weights: n.addConstant("w2", .random([8, 8, 3, 3], using: &gen)), pads: [1, 1, 1, 1])
        let expand = try n.convolution(window, weights: n.addConstant("w3", .random([8, 8, 1, 1], using: &gen)))
        try n.markOutput(
            try n.convolution(expand, weights: n.addConstant("w4", .random([8, 8, 1, 1], using: &gen))),
            as: "y")
        let graph = try n.build()
        let engine = try Builder.build(graph, device: Self.device())
        let without = try Builder.build(
            graph, device: Self.device(), config: BuilderConfig(disabledPasses: [TransposedInput.name]))
        let count = { (e: Engine) in e.graph.nodes.filter { $0.layer is TransposeLayer }.count }
        #expect(count(engine) == count(without) - 1, "\(engine.graph.textForm())")
        let input = Tensor.random([2, 8, 4, 4], in: -1...1, using: &gen)
        try ChannelsLastTests.expectSameOutputs(engine, without, input, ["y"], "seed \(seed)")
    }
}
