import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// Explicitly quantized graphs (Q/DQ pairs as quantization tools write them): the optimizer folds them into
/// int8 layers with no quantize or dequantize kernel left, and the outputs stay those of the Q/DQ graph.
struct QDQFoldingTests {
    let seed = SeededGenerator.testSeed()

    static func f32(_ dims: [Int]) -> ValueType { .tensor(TensorType(.float32, dims.map { Dim.value($0) })) }

    /// Q then DQ of `value` with a scalar scale and zero point, named after `value`.
    static func pair(_ value: String, _ scale: String, _ zero: String) -> [Node] {
        [
            Node(
                name: "\(value)_q", layer: QuantizeLayer(axis: 1, outputType: .uint8), inputs: [value, scale, zero],
                outputs: ["\(value)_quantized"]),
            Node(
                name: "\(value)_dq", layer: DequantizeLayer(axis: 1), inputs: ["\(value)_quantized", scale, zero],
                outputs: ["\(value)_dequantized"]),
        ]
    }

    /// x -> Q/DQ -> conv(DQ(int8 W per channel), bias) -> relu -> Q/DQ -> maxpool -> Q/DQ -> flatten ->
    /// gemm(DQ(int8 B [K,N] per column), C) -> Q/DQ -> y. `weightZero` is the weights' zero point.
    /// `transB`: B is stored [N, K] with per-row scales (Gemm's transB); `fullC`: C is a constant of the output's
    /// shape instead of a bias.
    static func model(
        _ gen: inout SeededGenerator, weightZero: Int8 = 0, transB: Bool = false, fullC: Bool = false
    ) -> Graph {
        let wScales = Tensor.random([4], in: 0.005...0.02, using: &gen)
        let bScales = Tensor.random([5], in: 0.01...0.03, using: &gen)
        var g = Graph(
            name: "qdq", inputs: [GraphValue(name: "x", type: f32([2, 3, 6, 6]))],
            outputs: [GraphValue(name: "y_dequantized", type: nil)],
            initializers: [
                "sx": Tensor(shape: [], scalars: [Float(0.01)]), "zx": Tensor(shape: [], scalars: [UInt8(128)]),
                "sa": Tensor(shape: [], scalars: [Float(0.02)]), "za": Tensor(shape: [], scalars: [UInt8(0)]),
                "sy": Tensor(shape: [], scalars: [Float(0.05)]), "zy": Tensor(shape: [], scalars: [UInt8(100)]),
                "wq": .randomIntegers(Int8.self, [4, 3, 3, 3], in: -127...127, using: &gen), "sw": wScales,
                "zw": Tensor(shape: [4], scalars: [Int8](repeating: weightZero, count: 4)),
                "bias": .random([4], using: &gen),
                "bq": .randomIntegers(Int8.self, transB ? [5, 36] : [36, 5], in: -127...127, using: &gen),
                "sb": bScales, "c": .random(fullC ? [2, 5] : [5], using: &gen),
            ],
            nodes: pair("x", "sx", "zx") + [
                Node(name: "w_dq", layer: DequantizeLayer(axis: 0), inputs: ["wq", "sw", "zw"], outputs: ["w"]),
                Node(
                    name: "conv", layer: ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1])),
                    inputs: ["x_dequantized", "w", "bias"], outputs: ["conv"]),
                Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["conv"], outputs: ["a"]),
            ] + pair("a", "sa", "za") + [
                Node(
                    name: "pool", layer: PoolLayer(op: .max, window: PoolGeometry(kernel: [2, 2], strides: [2, 2])),
                    inputs: ["a_dequantized"], outputs: ["p"])
            ] + pair("p", "sa", "za") + [
                Node(
                    name: "flatten", layer: ReshapeLayer(.flatten(axis: 1)), inputs: ["p_dequantized"], outputs: ["f"]),
                Node(name: "b_dq", layer: DequantizeLayer(axis: transB ? 0 : 1), inputs: ["bq", "sb"], outputs: ["b"]),
                Node(name: "gemm", layer: MatMulLayer(transposeB: transB), inputs: ["f", "b", "c"], outputs: ["y"]),
            ] + pair("y", "sy", "zy"))
        try? g.inferTypes()
        return g
    }

    @Test(arguments: [false, true])
    func quantizeDequantizePairsBecomeInt8Layers(transB: Bool) throws {
        var gen = SeededGenerator(seed: seed)
        var g = Self.model(&gen, transB: transB)
        // The flatten input has no Q/DQ of its own: give the gemm one, as quantization tools do.
        g.nodes.insert(contentsOf: Self.pair("f", "sa", "za"), at: g.nodes.firstIndex { $0.name == "b_dq" }!)
        g.nodes[g.nodes.firstIndex { $0.name == "gemm" }!].inputs[0] = "f_dequantized"
        try g.inferTypes()
        let x = Tensor.random([2, 3, 6, 6], in: -1.5...1.5, using: &gen)
        let run = try OptimizedVersusPlain(g, ["x": x])
        let kinds = run.optimized.nodes.map(\.kind.name)
        #expect(kinds == ["convolution.int8", "pool", "reshape", "matMul.int8"], "\(kinds), seed \(seed)")
        // Rounding in a different order can move a value across a quantization step: allow one step of the
        // output's scale.
        run.expectSameOutputs(rtol: 0, atol: 0.05 + 1e-4)
        let text = run.optimized.textForm()
        #expect(text.contains("input=x/0.01+128:u8") && text.contains("output=x/0.05+100:u8"), "\(text)")
    }

    @Test func weightsWithZeroPointsStayFloatConstants() throws {
        var gen = SeededGenerator(seed: seed)
        let g = Self.model(&gen, weightZero: 3)
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 3, 6, 6], in: -1.5...1.5, using: &gen)])
        let kinds = run.optimized.nodes.map(\.kind.name)
        // The convolution keeps float weights (its DQ folded to a constant); the gemm, with a symmetric B but an
        // input that is not quantize-dequantized, too.
        #expect(!kinds.contains("convolution.int8") && kinds.contains("convolution"), "\(kinds)")
        #expect(!kinds.contains("matMul.int8"), "\(kinds)")
        let dequantizedConstants = run.optimized.nodes.filter {
            $0.layer is DequantizeLayer && $0.inputs.allSatisfy { run.optimized.initializers[$0] != nil }
        }
        #expect(dequantizedConstants.isEmpty)
        run.expectSameOutputs(rtol: 1e-5, atol: 1e-5)
    }

    @Test func aCInputThatIsNotABiasKeepsTheProductFloat() throws {
        var gen = SeededGenerator(seed: seed)
        var g = Self.model(&gen, fullC: true)
        g.nodes.insert(contentsOf: Self.pair("f", "sa", "za"), at: g.nodes.firstIndex { $0.name == "b_dq" }!)
        g.nodes[g.nodes.firstIndex { $0.name == "gemm" }!].inputs[0] = "f_dequantized"
        try g.inferTypes()
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 3, 6, 6], in: -1.5...1.5, using: &gen)])
        let kinds = run.optimized.nodes.map(\.kind.name)
        #expect(kinds.contains("convolution.int8") && kinds.contains("matMul") && !kinds.contains("matMul.int8"))
        run.expectSameOutputs(rtol: 0, atol: 0.05 + 1e-4)
    }

    @Test func switchingThePassOffKeepsTheQDQGraph() throws {
        var gen = SeededGenerator(seed: seed)
        let g = Self.model(&gen)
        let device = CPUDevice(threads: 2)
        let engine = try Builder.build(g, device: device, config: BuilderConfig(disabledPasses: ["qdq-folding"]))
        let kinds = engine.graph.nodes.map(\.kind.name)
        #expect(kinds.contains("quantize") && kinds.contains("dequantize") && !kinds.contains("convolution.int8"))
    }
}
