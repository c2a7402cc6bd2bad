import KilnCPU
import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

@testable import KilnRuntime

/// The CPU backend claiming what a GPU offers, so an engine runs here exactly as the builder plans it for a GPU
/// (only slower): with `halfPrecision` the 16-bit kernels (the CPU reference kernels take float16 and
/// bfloat16), with `int8Chains` chained int8 convolutions, channels-last (the reference runs those forms too).
final class ClaimingCPU: Device {
    let cpu = CPUDevice()
    let halfPrecision: Bool
    let int8Chains: Bool
    /// The layers it claims to run faster in 16 bits than in int8.
    let slowerInInt8: @Sendable (Node) -> Bool

    init(
        halfPrecision: Bool = false, int8Chains: Bool = false,
        slowerInInt8: @escaping @Sendable (Node) -> Bool = { _ in false }
    ) {
        self.halfPrecision = halfPrecision
        self.int8Chains = int8Chains
        self.slowerInInt8 = slowerInInt8
    }

    var properties: DeviceProperties { cpu.properties }
    func supports(_ node: Node) -> Bool { cpu.supports(node) }
    func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel {
        try cpu.makeKernel(node, subgraphs: subgraphs)
    }
    /// As the CUDA backend: an int8 product's float input and output stay float32.
    func runsInHalfPrecision(_ node: Node, dtype: DType) -> Bool {
        halfPrecision && !(node.layer is QuantizedConvolutionLayer || node.layer is QuantizedMatMulLayer)
    }
    func chainsInt8(_ node: Node, input: TensorType, weights: TensorType) -> Bool { int8Chains }
    func int8Beats(_ node: Node, input: TensorType, weights: TensorType, half: DType, chained: Bool) -> Bool {
        !slowerInInt8(node)
    }
    func runsChannelsLast(_ node: Node, input: TensorType) -> Bool {
        int8Chains && (node.layer as? QuantizedConvolutionLayer)?.writesQuantized == true
    }
}

/// Mixed-precision builds: which layers run in 16 bits and which keep float32 (and why), the casts at the
/// boundaries, the engine's I/O dtype, the accuracy guard, and the outputs against float32 on fresh inputs.
struct HalfBuildTests {
    let seed = SeededGenerator.testSeed()

    /// conv+relu, conv, residual add, global pool, flatten, matMul+bias, softmax; and exp(matMul) as a second
    /// output, which may overflow float16.
    static func network(_ gen: inout SeededGenerator, bigConstant: Bool = false) throws -> Graph {
        var n = NetworkBuilder(name: "half")
        let x = n.addInput("x", .float32, [.symbol("N"), 3, 8, 8])
        let c1 = try n.relu(
            try n.convolution(
                x, weights: n.addConstant("w1", .random([8, 3, 3, 3], in: -0.5...0.5, using: &gen)),
                bias: n.addConstant("b1", .random([8], using: &gen)), pads: [1, 1, 1, 1]))
        let c2 = try n.convolution(
            c1, weights: n.addConstant("w2", .random([8, 8, 3, 3], in: -0.3...0.3, using: &gen)), pads: [1, 1, 1, 1])
        let sum = try n.add(c1, c2)
        let pooled = try n.flatten(try n.globalAveragePool(sum))
        let logits = try n.matMul(
            pooled, n.addConstant("w3", .random([8, 4], using: &gen)),
            bias: n.addConstant(
                "b3",
                bigConstant
                    ? Tensor(shape: [4], scalars: [Float](repeating: -1e30, count: 4))
                    : .random([4], using: &gen)))
        try n.markOutput(try n.softmax(logits), as: "y")
        let grown = try n.add(UnaryLayer(.exp), [logits], name: "grow")[0]
        try n.markOutput(grown, as: "e")
        return try n.build()
    }

    static func run(_ engine: Engine, _ x: Tensor) throws -> [String: Tensor] {
        try engine.makeContext().run(["x": .tensor(x)]).mapValues { try $0.asTensor() }
    }

    static func floats(_ t: Tensor) throws -> [Float] { try t.cast(to: .float32).scalars(as: Float.self) }

    @Test(arguments: [DType.float16, .bfloat16])
    func layersRunIn16BitsAndOutputsStayClose(_ dtype: DType) throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let device = ClaimingCPU(halfPrecision: true)
        var config = BuilderConfig()
        config.half = HalfConfig(dtype: dtype)
        let half = try Builder.build(graph, device: device, config: config)
        let full = try Builder.build(graph, device: device)
        let engineGraph = half.graph
        // Products read 16-bit operands, weights included, and no float32 copy of a weight is left.
        for node in engineGraph.nodes where node.kind == ConvolutionLayer.kind || node.kind == MatMulLayer.kind {
            for input in node.inputs where !input.isEmpty {
                #expect(engineGraph.type(of: input)?.tensorType?.dtype == dtype, "\(node.name) \(input)")
            }
        }
        #expect(!engineGraph.initializers.values.contains { $0.dtype == .float32 }, "seed \(seed)")
        // Inputs and outputs stay float32: casts at the boundaries.
        #expect(engineGraph.inputs.allSatisfy { $0.type?.tensorType?.dtype == .float32 })
        #expect(engineGraph.outputs.allSatisfy { $0.type?.tensorType?.dtype == .float32 })
        #expect(engineGraph.nodes.contains { ($0.layer as? CastLayer)?.to == dtype })
        let report = try #require(half.precision)
        #expect(report.precision == dtype.onnxName)
        let grow = try #require(report.layers.first { $0.name == "grow" })
        if dtype == .float16 {
            #expect(grow.precision == "float32" && grow.reason?.contains("overflow") == true)
        } else {
            #expect(grow.precision == "bfloat16")
        }
        let x = Tensor.random([2, 3, 8, 8], in: 0...1, using: &gen)
        let got = try Self.run(half, x)
        let want = try Self.run(full, x)
        let tolerance = dtype == .float16 ? 5e-3 : 3e-2
        for name in ["y", "e"] {
            let g = try Self.floats(try #require(got[name]))
            let w = try Self.floats(try #require(want[name]))
            #expect(got[name]?.dtype == .float32)
            let error = FloatDifference(g, w).relative
            #expect(error < tolerance, "\(name) \(dtype) rel. error \(error), seed \(seed)")
            #expect(error > 0, "\(name): a 16-bit engine that matches float32 exactly did not round")
        }
    }

    @Test func ioTypeMakesTheEngineTakeAndGive16Bits() throws {
        var gen = SeededGenerator(seed: seed)
        var config = BuilderConfig()
        config.half = HalfConfig(dtype: .float16, ioType: .float16)
        let engine = try Builder.build(try Self.network(&gen), device: ClaimingCPU(halfPrecision: true), config: config)
        #expect(engine.graph.inputs.allSatisfy { $0.type?.tensorType?.dtype == .float16 })
        #expect(engine.graph.outputs.allSatisfy { $0.type?.tensorType?.dtype == .float16 })
        let x = try Tensor.random([1, 3, 8, 8], in: 0...1, using: &gen).cast(to: .float16)
        let out = try Self.run(engine, x)
        #expect(out["y"]?.dtype == .float16 && out["e"]?.dtype == .float16)
    }

    @Test func aConstantBeyondFloat16KeepsItsLayerInFloat32() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen, bigConstant: true)
        var config = BuilderConfig()
        config.optimize = false
        config.half = HalfConfig(dtype: .float16)
        let engine = try Builder.build(graph, device: ClaimingCPU(halfPrecision: true), config: config)
        let report = try #require(engine.precision)
        let product = try #require(report.layers.first { $0.name.hasPrefix("matMul") })
        #expect(product.precision == "float32" && product.reason?.contains("65504") == true, "\(product)")
        config.half = HalfConfig(dtype: .bfloat16)
        let bf16 = try Builder.build(graph, device: ClaimingCPU(halfPrecision: true), config: config)
        #expect(bf16.precision?.layers.first { $0.name == product.name }?.precision == "bfloat16")
    }

    @Test func theGuardMovesLayersBackUntilWithinTolerance() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let validation = (0..<2).map { _ in ["x": Tensor.random([2, 3, 8, 8], in: 0...1, using: &gen)] }
        var config = BuilderConfig()
        config.half = HalfConfig(dtype: .bfloat16, validation: validation)
        let measured = try #require(
            try Builder.build(graph, device: ClaimingCPU(halfPrecision: true), config: config).precision)
        let worst = measured.worstRelativeError
        #expect(measured.outputs.count == 2 && worst > 0 && measured.movedToFloat.isEmpty, "seed \(seed)")
        // A tolerance below what bfloat16 gives: layers move back until the outputs are within it.
        config.half?.tolerance = worst / 4
        let guarded = try #require(
            try Builder.build(graph, device: ClaimingCPU(halfPrecision: true), config: config).precision)
        #expect(!guarded.movedToFloat.isEmpty, "seed \(seed)")
        #expect(guarded.worstRelativeError <= worst / 4, "seed \(seed)")
        for name in guarded.movedToFloat {
            #expect(guarded.layers.first { $0.name == name }?.precision == "float32")
        }
    }

    /// The guard ranks layers by their own outputs, which are 16-bit values: the evaluator widens them.
    @Test func theGuardReads16BitLayerOutputs() throws {
        var gen = SeededGenerator(seed: seed)
        var graph = try Self.network(&gen)
        try HalfPrecision(dtype: .float16, runsInHalf: { _ in true }).apply(&graph)
        let layer = try #require(graph.nodes.first { $0.kind == ConvolutionLayer.kind }?.outputs.first)
        #expect(graph.type(of: layer)?.tensorType?.dtype == .float16)
        let batches = [["x": Tensor.random([1, 3, 8, 8], in: 0...1, using: &gen)]]
        let outputs = try OutputEvaluator(device: ClaimingCPU(halfPrecision: true), batches: batches).outputs(
            graph, extra: [layer])
        #expect(outputs[layer]?.count == 8 * 8 * 8, "seed \(seed)")
    }

    @Test func aDeviceWithoutHalfKernelsRefuses() throws {
        var gen = SeededGenerator(seed: seed)
        var config = BuilderConfig()
        config.half = HalfConfig(dtype: .float16)
        #expect {
            try Builder.build(try Self.network(&gen), device: CPUDevice(), config: config)
        } throws: { error in
            "\(error)".contains("no fast float16 kernels")
        }
    }
}
