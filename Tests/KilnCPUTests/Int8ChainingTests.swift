import Foundation
import KilnCPU
import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

@testable import KilnRuntime

/// `Int8Chaining` on the CPU reference kernels: which layers it chains and where it quantizes and
/// dequantizes, that a chain computes what the unchained int8 layers compute (exactly without a residual,
/// within the residual's quantization with one), the channels-last form, and a build through a device that
/// chains.
struct Int8ChainingTests {
    let seed = SeededGenerator.testSeed()

    /// x [2, 8, 6, 6] -> a = relu(conv3x3(x)) -> b = relu(conv3x3(a, or its 3x3 stride-2 max pool with
    /// `pool`)) -> c = conv1x1(b) (+ a, relu with `residual`) -> y = flatten(globalAveragePool(c)); optimized,
    /// so the adds and ReLUs are epilogues.
    static func network(residual: Bool, pool: Bool = false, _ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "block")
        let x = n.addInput("x", .float32, [2, 8, 6, 6])
        func conv(_ input: NetworkBuilder.Value, _ k: Int, _ name: String) throws -> NetworkBuilder.Value {
            try n.convolution(
                input, weights: n.addConstant(name + ".w", .random([8, 8, k, k], in: -0.3...0.3, using: &gen)),
                bias: n.addConstant(name + ".b", .random([8], in: -0.2...0.2, using: &gen)),
                pads: k == 3 ? [1, 1, 1, 1] : [])
        }
        let a = try n.relu(try conv(x, 3, "a"))
        let b = try n.relu(
            try conv(pool ? try n.maxPool(a, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]) : a, 3, "b"))
        var c = try conv(b, 1, "c")
        if residual { c = try n.relu(try n.add(c, a)) }
        try n.markOutput(try n.flatten(try n.globalAveragePool(c)), as: "y")
        return try Builder.optimize(try n.build(), device: CPUDevice())
    }

    /// The network's products in int8, every value's range 2.5 (some saturate: the test is about chaining).
    static func quantized(_ graph: Graph) throws -> (Graph, [String: Float]) {
        var g = graph
        var ranges: [String: Float] = [:]
        for node in g.nodes { for value in node.inputs + node.outputs { ranges[value] = 2.5 } }
        let done = try Int8Quantization(ranges: ranges).apply(&g)
        #expect(done.count == 3)
        return (g, ranges)
    }

    /// `graph` with its last int8 convolution's output requantized as a chain's end stores it.
    static func endingQuantized(_ graph: Graph) throws -> Graph {
        var g = graph
        let last = try #require(g.nodes.lastIndex { $0.layer is QuantizedConvolutionLayer })
        var layer = try #require(g.nodes[last].layer as? QuantizedConvolutionLayer)
        layer.output = ActivationQuantization(scale: 2.5 / 127)
        g.nodes[last].layer = layer
        return g
    }

    static func run(_ graph: Graph, _ x: Tensor) throws -> [Float] {
        let engine = try Engine(graph: graph, device: CPUDevice())
        return try engine.makeContext().run(["x": .tensor(x)])["y"]!.asTensor().scalars(as: Float.self)
    }

    @Test func aChainWithoutResidualComputesWhatTheUnchainedLayersDo() throws {
        var gen = SeededGenerator(seed: seed)
        let (plain, ranges) = try Self.quantized(try Self.network(residual: false, &gen))
        var chained = plain
        let names = try Int8Chaining(ranges: ranges, chains: { _, _, _ in true }).apply(&chained)
        #expect(names.count == 3, "seed \(seed)")
        let convs = chained.nodes.compactMap { $0.layer as? QuantizedConvolutionLayer }
        #expect(convs.count == 3 && convs.allSatisfy { $0.writesQuantized && $0.output?.scale == 2.5 / 127 })
        // One quantize where the chain starts (the graph input), one dequantize where it ends (the pool).
        #expect(chained.nodes.filter { $0.layer is QuantizeLayer }.map(\.inputs[0]) == ["x"])
        let dequantized = chained.nodes.filter { $0.layer is DequantizeLayer }
        #expect(dequantized.count == 1 && dequantized[0].inputs[0] == Int8Chaining.int8Name(plain.nodes[2].outputs[0]))
        for node in chained.nodes where node.layer is QuantizedConvolutionLayer {
            #expect(chained.type(of: node.inputs[0])?.tensorType?.dtype == .int8)
            #expect(chained.type(of: node.outputs[0])?.tensorType?.dtype == .int8)
        }
        // The last output passes through int8 on its way to the pool, as requantizing it would.
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        #expect(try Self.run(chained, x) == Self.run(try Self.endingQuantized(plain), x), "seed \(seed)")
    }

    @Test func aMaxPoolBetweenChainedConvolutionsRunsOnInt8() throws {
        var gen = SeededGenerator(seed: seed)
        let (plain, ranges) = try Self.quantized(try Self.network(residual: false, pool: true, &gen))
        var chained = plain
        try Int8Chaining(ranges: ranges, chains: { _, _, _ in true }).apply(&chained)
        let pool = try #require(chained.nodes.first { $0.layer is PoolLayer })
        #expect(chained.type(of: pool.inputs[0])?.tensorType?.dtype == .int8)
        #expect(chained.type(of: pool.outputs[0])?.tensorType?.dtype == .int8)
        // Nothing around it: one quantize at the graph input, one dequantize at the end.
        #expect(chained.nodes.filter { $0.layer is QuantizeLayer }.count == 1)
        #expect(chained.nodes.filter { $0.layer is DequantizeLayer }.count == 1)
        // Pooling commutes with the monotonic quantization: the same outputs as the float pool.
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        #expect(try Self.run(chained, x) == Self.run(try Self.endingQuantized(plain), x), "seed \(seed)")
        // Channels-last, the pool joins the convolutions' region.
        var last = chained
        try ChannelsLastLayout(runsChannelsLast: { node, input in
            (node.layer as? QuantizedConvolutionLayer)?.writesQuantized == true
                || (node.layer is PoolLayer && input.dtype == .int8)
        }).apply(&last)
        #expect((last.nodes.first { $0.layer is PoolLayer }?.layer as? PoolLayer)?.channelsLast == true)
        #expect(try Self.run(last, x) == Self.run(chained, x), "seed \(seed)")
    }

    @Test func aPoolWhoseOutputIsReadAsFloatKeepsTheChainBeforeIt() throws {
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "pool-out")
        let x = n.addInput("x", .float32, [2, 8, 6, 6])
        let a = try n.relu(
            try n.convolution(
                x, weights: n.addConstant("a.w", .random([8, 8, 3, 3], in: -0.3...0.3, using: &gen)),
                pads: [1, 1, 1, 1]))
        try n.markOutput(try n.maxPool(a, kernel: [2, 2], strides: [2, 2]), as: "y")
        var g = try Builder.optimize(try n.build(), device: CPUDevice())
        var ranges: [String: Float] = [:]
        for node in g.nodes { for value in node.inputs + node.outputs { ranges[value] = 2.5 } }
        try Int8Quantization(ranges: ranges).apply(&g)
        let plain = g
        // The pool's output is a graph output; with a range of its own it pools int8 and is dequantized after.
        try Int8Chaining(ranges: ranges, chains: { _, _, _ in true }).apply(&g)
        let pool = try #require(g.nodes.first { $0.layer is PoolLayer })
        #expect(g.type(of: pool.inputs[0])?.tensorType?.dtype == .int8)
        #expect(g.nodes.contains { $0.layer is DequantizeLayer && $0.inputs[0] == pool.outputs[0] }, "\(g)")
        let input = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        let engine = try Engine(graph: g, device: CPUDevice())
        let got = try engine.makeContext().run(["x": .tensor(input)])["y"]!.asTensor().scalars(as: Float.self)
        let float = try Engine(graph: plain, device: CPUDevice()).makeContext().run(["x": .tensor(input)])["y"]!
            .asTensor().scalars(as: Float.self)
        let step = Float(2.5 / 127)
        #expect(zip(got, float).allSatisfy { abs($0 - $1) <= step / 2 + 1e-6 || $1 > 2.5 }, "seed \(seed)")
    }

    @Test func aResidualIsAddedAsItsInt8Values() throws {
        var gen = SeededGenerator(seed: seed)
        let (plain, ranges) = try Self.quantized(try Self.network(residual: true, &gen))
        var chained = plain
        try Int8Chaining(ranges: ranges, chains: { _, _, _ in true }).apply(&chained)
        let last = try #require(chained.nodes.last { $0.layer is QuantizedConvolutionLayer })
        let layer = try #require(last.layer as? QuantizedConvolutionLayer)
        #expect(layer.epilogue.residual && layer.residualQuantization?.scale == 2.5 / 127)
        #expect(chained.type(of: last.inputs[4])?.tensorType?.dtype == .int8)
        // Only the graph input is quantized: the residual is the first convolution's int8 output.
        #expect(chained.nodes.filter { $0.layer is QuantizeLayer }.count == 1)
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        let (got, expected) = (try Self.run(chained, x), try Self.run(try Self.endingQuantized(plain), x))
        // The residual's rounding (half its step) and at most one more step of the output's rounding; the
        // pool averages, so no element can move further.
        let bound = 2.5 / 127 * 1.5 + 1e-5
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= Float(bound), "seed \(seed): \(worst)")
    }

    @Test func convolutionsTheDeviceDoesNotChainStayFloat() throws {
        var gen = SeededGenerator(seed: seed)
        let (plain, ranges) = try Self.quantized(try Self.network(residual: false, &gen))
        var chained = plain
        let middle = plain.nodes.filter { $0.layer is QuantizedConvolutionLayer }[1].name
        let names = try Int8Chaining(ranges: ranges, chains: { node, _, _ in node.name != middle }).apply(&chained)
        #expect(names.count == 2 && !names.contains(middle))
        // The first writes int8 and is dequantized for the middle one; the last quantizes the middle one's output.
        #expect(chained.nodes.filter { $0.layer is QuantizeLayer }.count == 2)
        #expect(chained.nodes.filter { $0.layer is DequantizeLayer }.count == 2)
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        #expect(try Self.run(chained, x) == Self.run(try Self.endingQuantized(plain), x), "seed \(seed)")
    }

    /// The residual network quantized and chained throughout.
    static func chainedResidualNetwork(_ gen: inout SeededGenerator) throws -> Graph {
        let (plain, ranges) = try Self.quantized(try Self.network(residual: true, &gen))
        var chained = plain
        try Int8Chaining(ranges: ranges, chains: { _, _, _ in true }).apply(&chained)
        return chained
    }

    @Test func chainedConvolutionsGoChannelsLastAndComputeTheSame() throws {
        var gen = SeededGenerator(seed: seed)
        let chained = try Self.chainedResidualNetwork(&gen)
        var last = chained
        let moved = try ChannelsLastLayout(runsChannelsLast: { node, _ in
            (node.layer as? QuantizedConvolutionLayer)?.writesQuantized == true
        }).apply(&last)
        // The three convolutions and the dequantize at the end; the quantize of the graph's input stays
        // channels-first (its int8 result is transposed).
        #expect(moved == 4, "\(last)")
        #expect(
            last.nodes.filter { $0.layer is TransposeLayer }.map { last.type(of: $0.inputs[0])?.tensorType?.dtype } == [
                .int8, .float32,
            ])
        let convs = last.nodes.compactMap { $0.layer as? QuantizedConvolutionLayer }
        #expect(convs.count == 3 && convs.allSatisfy(\.channelsLast))
        for node in last.nodes where node.layer is QuantizedConvolutionLayer {
            #expect(last.type(of: node.inputs[1])?.tensorType?.shape?.last == .value(8))
        }
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        #expect(try Self.run(last, x) == Self.run(chained, x), "seed \(seed)")
    }

    /// Where the device's kernel reads a chain's first input channels-first (a stem over the quantized image),
    /// no transpose goes in front of it, and the reference kernels compute the same.
    @Test func aChainsFirstConvolutionMayReadItsInputChannelsFirst() throws {
        var gen = SeededGenerator(seed: seed)
        let chained = try Self.chainedResidualNetwork(&gen)
        var last = chained
        try ChannelsLastLayout(
            runsChannelsLast: { node, _ in (node.layer as? QuantizedConvolutionLayer)?.writesQuantized == true },
            readsChannelsFirst: { _, input, weights in
                input.dtype == .int8 && weights.shape?.count == 4 && input.shape?[1] == .value(8)
            }
        ).apply(&last)
        let convs = last.nodes.compactMap { $0.layer as? QuantizedConvolutionLayer }
        // Only the first reads from outside the region; the others read the region's own channels-last values.
        #expect(convs.map(\.channelsFirstInput) == [true, false, false], "\(last)")
        #expect(
            last.nodes.filter { $0.layer is TransposeLayer }.map { last.type(of: $0.inputs[0])?.tensorType?.dtype } == [
                .float32
            ])
        let first = try #require(last.nodes.first { $0.layer is QuantizedConvolutionLayer })
        #expect(last.type(of: first.inputs[0])?.tensorType?.shape == [2, 8, 6, 6].map { Dim.value($0) })
        #expect(last.type(of: first.outputs[0])?.tensorType?.shape == [2, 6, 6, 8].map { Dim.value($0) })
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        #expect(try Self.run(last, x) == Self.run(chained, x), "seed \(seed)")
    }

    @Test func anInt8BuildChainsWhatTheDeviceChainsAndCalibratesTheChainsEnd() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(residual: true, &gen)
        let batches = (0..<2).map { _ in ["x": Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)] }
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: batches)
        let engine = try Builder.build(graph, device: ClaimingCPU(int8Chains: true), config: config)
        let convs = engine.graph.nodes.compactMap { $0.layer as? QuantizedConvolutionLayer }
        #expect(convs.count == 3 && convs.allSatisfy { $0.writesQuantized && $0.channelsLast }, "\(engine.graph)")
        let report = try #require(engine.precision)
        #expect(report.worstRelativeError < 0.05, "seed \(seed): \(report.worstRelativeError)")
        var unchainedConfig = config
        unchainedConfig.disabledPasses = [Int8Chaining.name]
        let unchained = try Builder.build(graph, device: ClaimingCPU(int8Chains: true), config: unchainedConfig)
        #expect(!unchained.graph.nodes.contains { ($0.layer as? QuantizedConvolutionLayer)?.writesQuantized == true })
        let x = Tensor.random([2, 8, 6, 6], in: -1...1, using: &gen)
        let reference = try Self.run(try Builder.build(graph, device: CPUDevice()).graph, x)
        let error = Int8BuildTests.relativeError(try Self.run(engine.graph, x), reference)
        #expect(error < 0.05, "seed \(seed): chained int8 differs from float32 by \(error)")
    }
}
