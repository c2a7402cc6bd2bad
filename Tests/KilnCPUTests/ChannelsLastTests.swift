import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// The CPU, asking for channels-last convolutions and pooling as the GPU does in 16 bits, so the layout passes
/// run in CI (the CPU kernels run channels-last layers through copies).
final class ChannelsLastCPU: Device {
    let cpu = CPUDevice(threads: 2)
    /// Which layers go channels-last: every convolution and pooling unless told otherwise.
    let channelsLast: @Sendable (Node) -> Bool
    /// Whether 1×1 convolutions read a channels-first input as it is (`TransposedInput`).
    let transposedInput: Bool

    init(
        channelsLast: @escaping @Sendable (Node) -> Bool = { $0.layer is ConvolutionLayer || $0.layer is PoolLayer },
        transposedInput: Bool = false
    ) {
        self.channelsLast = channelsLast
        self.transposedInput = transposedInput
    }

    var properties: DeviceProperties { cpu.properties }
    func supports(_ node: Node) -> Bool { cpu.supports(node) }
    func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel {
        try cpu.makeKernel(node, subgraphs: subgraphs)
    }
    func runsChannelsLast(_ node: Node, input: TensorType) -> Bool { channelsLast(node) }
    func takesTransposedInput(_ node: Node, input: TensorType, outputChannels: Int) -> Bool { transposedInput }
}

/// The channels-last layout pass: which layers move, where the transposes go, the permuted weights and
/// per-channel constants, and the outputs against the channels-first engine on fresh inputs.
struct ChannelsLastTests {
    let seed = SeededGenerator.testSeed()

    /// conv+relu, max pool, conv with a residual, relu (also an output: "mid"), 1×1 expansion with ReLU6,
    /// depthwise conv, a per-channel scale, 1×1 conv, global average pool, flatten, matMul.
    static func network(_ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "cnn")
        let x = n.addInput("x", .float32, [.symbol("N"), 4, 10, 10])
        func constant(_ name: String, _ shape: [Int], _ gen: inout SeededGenerator) -> NetworkBuilder.Value {
            n.addConstant(name, .random(shape, in: -0.5...0.5, using: &gen))
        }
        let c1 = try n.relu(
            try n.convolution(
                x, weights: constant("w1", [8, 4, 3, 3], &gen), bias: constant("b1", [8], &gen), pads: [1, 1, 1, 1]))
        let pooled = try n.add(
            PoolLayer(op: .max, window: PoolGeometry(kernel: [2, 2], strides: [2, 2])), [c1], name: "pool")[0]
        let c2 = try n.convolution(pooled, weights: constant("w2", [8, 8, 3, 3], &gen), pads: [1, 1, 1, 1])
        let mid = try n.relu(try n.add(c2, pooled))
        try n.markOutput(mid, as: "mid")
        // Weights large enough that the ReLU6 clips at 6 often.
        let expanded = try n.add(
            ClipLayer(min: 0, max: 6),
            [try n.convolution(mid, weights: n.addConstant("we", .random([8, 8, 1, 1], in: -4...4, using: &gen)))],
            name: "relu6")[0]
        let dw = try n.convolution(
            expanded, weights: constant("w3", [8, 1, 3, 3], &gen), bias: constant("b3", [8], &gen), strides: [2, 2],
            pads: [1, 1, 1, 1], group: 8)
        let scaled = try n.add(BinaryLayer(.mul), [dw, constant("scale", [8, 1, 1], &gen)], name: "scale")[0]
        let c4 = try n.convolution(scaled, weights: constant("w4", [16, 8, 1, 1], &gen))
        let logits = try n.matMul(
            try n.flatten(try n.globalAveragePool(c4)), constant("w5", [16, 5], &gen), bias: constant("b5", [5], &gen))
        try n.markOutput(logits, as: "y")
        return try n.build()
    }

    static func run(_ engine: Engine, _ x: Tensor) throws -> [String: Tensor] {
        try engine.makeContext().run(["x": .tensor(x)]).mapValues { try $0.asTensor() }
    }

    @Test func convolutionsAndPoolingMoveChannelsLastAndOutputsAgree() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let layout = try Builder.build(graph, device: ChannelsLastCPU())
        let plain = try Builder.build(graph, device: CPUDevice(threads: 2))
        let nodes = layout.graph.nodes
        let convolutions = nodes.compactMap { $0.layer as? ConvolutionLayer }
        #expect(convolutions.count == 5 && convolutions.allSatisfy(\.channelsLast), "\(layout.graph.textForm())")
        // The expansion's ReLU6 is split: the ReLU stays in its epilogue, the depthwise reader clamps at 6.
        #expect(convolutions.filter { $0.epilogue.activation == .relu }.count == 3)
        #expect(convolutions.filter { $0.inputMax == 6 }.count == 1)
        let pools = nodes.compactMap { $0.layer as? PoolLayer }
        #expect(pools.count == 2 && pools.allSatisfy { $0.channelsLast })
        // One transpose in (x), two out: "mid" for the caller and the pooled features for the flatten.
        let transposes = nodes.filter { $0.layer is TransposeLayer }
        #expect(transposes.count == 3, "\(layout.graph.textForm())")
        #expect(layout.graph.type(of: "x::nhwc")?.tensorType?.shape == [.symbol("N"), 10, 10, 4])
        let w1 = try #require(layout.graph.initializers["w1::nhwc"], "\(layout.graph.textForm())")
        #expect(w1.shape == [8, 3, 3, 4])
        #expect(layout.graph.initializers["scale::nhwc"]?.shape == [1, 1, 1, 8])
        for batch in [1, 3] {
            let x = Tensor.random([batch, 4, 10, 10], in: -1...1, using: &gen)
            try Self.expectSameOutputs(layout, plain, x, ["mid", "y"], "batch \(batch), seed \(seed)")
        }
    }

    /// Expects `engine` to give `reference`'s outputs `names` for input `x`, within float32 rounding.
    static func expectSameOutputs(
        _ engine: Engine, _ reference: Engine, _ x: Tensor, _ names: [String], _ context: String
    ) throws {
        let want = try run(reference, x)
        let got = try run(engine, x)
        for name in names {
            let (g, w) = (try #require(got[name]), try #require(want[name]))
            #expect(g.shape == w.shape)
            let problem = Comparison.mismatch(.tensor(g), .tensor(w), rtol: 1e-4, atol: 1e-5)
            #expect(problem == nil, "\(name), \(context): \(problem ?? "")")
        }
    }

    /// Inception-style branches concatenated on channels, then a DenseNet-style append (the features and a
    /// convolution of them, on the channel axis written as -3) and a concat on the height axis: all three stay
    /// in the region (their axes move with the layout), so the only transposes are the input's and the output's.
    @Test func concatsOfRegionValuesJoinTheRegion() throws {
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "branches")
        let x = n.addInput("x", .float32, [.symbol("N"), 4, 6, 6])
        func conv(_ v: NetworkBuilder.Value, _ inC: Int, _ outC: Int, _ k: Int) throws -> NetworkBuilder.Value {
            try n.relu(
                try n.convolution(
                    v, weights: n.addConstant("w", .random([outC, inC, k, k], in: -0.5...0.5, using: &gen)),
                    pads: Array(repeating: k / 2, count: 4)))
        }
        let branches = try n.add(
            ConcatLayer(axis: 1), [try conv(x, 4, 3, 1), try conv(x, 4, 5, 3)], name: "branches")[0]
        let dense = try n.add(ConcatLayer(axis: -3), [branches, try conv(branches, 8, 2, 3)], name: "dense")[0]
        let tall = try n.add(ConcatLayer(axis: 2), [dense, try conv(dense, 10, 10, 1)], name: "tall")[0]
        try n.markOutput(try n.relu(tall), as: "y")
        let graph = try n.build()
        let layout = try Builder.build(graph, device: ChannelsLastCPU())
        let concats = layout.graph.nodes.compactMap { $0.layer as? ConcatLayer }
        #expect(concats.map(\.axis) == [3, 3, 1], "\(layout.graph.textForm())")
        #expect(layout.graph.nodes.filter { $0.layer is TransposeLayer }.count == 2, "\(layout.graph.textForm())")
        let plain = try Builder.build(graph, device: CPUDevice(threads: 2))
        for batch in [1, 2] {
            let x = Tensor.random([batch, 4, 6, 6], in: -1...1, using: &gen)
            try Self.expectSameOutputs(layout, plain, x, ["y"], "batch \(batch), seed \(seed)")
        }
    }

    @Test func aLoneConvolutionKeepsChannelsFirst() throws {
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "patch")
        let x = n.addInput("x", .float32, [1, 3, 8, 8])
        let c = try n.convolution(x, weights: n.addConstant("w", .random([6, 3, 4, 4], using: &gen)), strides: [4, 4])
        try n.markOutput(try n.relu(c), as: "y")
        let engine = try Builder.build(try n.build(), device: ChannelsLastCPU())
        #expect(!engine.graph.nodes.contains { $0.layer is TransposeLayer }, "\(engine.graph.textForm())")
        #expect(engine.graph.nodes.compactMap { $0.layer as? ConvolutionLayer }.allSatisfy { !$0.channelsLast })
    }

    @Test func theLayoutPassSwitchesOffByName() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let engine = try Builder.build(
            graph, device: ChannelsLastCPU(), config: BuilderConfig(disabledPasses: ["channels-last"]))
        #expect(!engine.graph.nodes.contains { $0.layer is TransposeLayer })
        #expect(throws: (any Error).self) { try Pipeline.standard.disabling(["channels-lastt"]) }
    }

    @Test func permutedTensorsMoveEveryElement() throws {
        var gen = SeededGenerator(seed: seed)
        let t = try Tensor.random([2, 3, 4, 5], using: &gen).cast(to: .float16)
        let p = try t.permuted(ChannelsLast.fromFirst(rank: 4))
        #expect(p.shape == [2, 4, 5, 3])
        let (a, b) = (
            try t.cast(to: .float32).scalars(as: Float.self), try p.cast(to: .float32).scalars(as: Float.self)
        )
        for n in 0..<2 {
            for c in 0..<3 {
                for h in 0..<4 {
                    for w in 0..<5 {
                        #expect(b[((n * 4 + h) * 5 + w) * 3 + c] == a[((n * 3 + c) * 4 + h) * 5 + w])
                    }
                }
            }
        }
        #expect(try p.permuted(ChannelsLast.toFirst(rank: 4)).scalars(as: Float16.self) == t.scalars(as: Float16.self))
    }

    @Test func channelsLastLayersInferTheirShapes() throws {
        let conv = ConvolutionLayer(ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1]), channelsLast: true)
        let x = LayerInput(type: .tensor(TensorType(.float16, [2, 9, 9, 4])))
        let w = LayerInput(type: .tensor(TensorType(.float16, [6, 3, 3, 4])))
        #expect(try conv.inferTypes([x, w]).first??.tensorType?.shape == [2, 5, 5, 6])
        let pool = PoolLayer(op: .average(countIncludePad: false), window: nil, channelsLast: true)
        #expect(try pool.inferTypes([x]).first??.tensorType?.shape == [2, 1, 1, 4])
    }
}
