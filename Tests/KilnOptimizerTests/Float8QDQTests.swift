import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// FP8 E4M3 Q/DQ graphs: quantize-dequantize pairs into float8e4m3fn and float8e4m3fn weights fold into the
/// quantized product layers with float8 operands, and the engine computes what the Q/DQ graph defines.
struct Float8QDQTests {
    let seed = SeededGenerator.testSeed()

    static func f32(_ dims: [Int]) -> ValueType { .tensor(TensorType(.float32, dims.map { Dim.value($0) })) }

    /// Q then DQ of `value` into float8e4m3fn with scale `scale` and no zero point.
    static func pair(_ value: String, _ scale: String, type: DType = .float8e4m3fn) -> [Node] {
        [
            Node(
                name: "\(value)_q", layer: QuantizeLayer(axis: 1, outputType: type), inputs: [value, scale],
                outputs: ["\(value)_quantized"]),
            Node(
                name: "\(value)_dq", layer: DequantizeLayer(axis: 1), inputs: ["\(value)_quantized", scale],
                outputs: ["\(value)_dequantized"]),
        ]
    }

    /// Random float8e4m3fn numbers in about ±`magnitude` (every byte a finite number).
    static func float8(_ shape: [Int], magnitude: Double, using gen: inout SeededGenerator) -> Tensor {
        let format = ActivationQuantization.float8
        let bytes = (0..<shape.reduce(1, *)).map { _ in
            format.encode(Double.random(in: -magnitude...magnitude, using: &gen), saturate: true)
        }
        return bytes.withUnsafeBytes { try! Tensor(dtype: .float8e4m3fn, shape: shape, rawBytes: $0) }
    }

    /// x -> Q/DQ -> conv(DQ(fp8 W, per channel), bias) -> relu -> Q/DQ -> flatten -> Q/DQ ->
    /// gemm(DQ(fp8 B [N, K], per row), bias) -> y. With `activationPair` false the relu output goes to the flatten
    /// as it is (and the gemm's input has no pair either unless `gemmPair`).
    static func model(
        _ gen: inout SeededGenerator, activationPair: Bool = true, inputType: DType = .float8e4m3fn
    )
        -> Graph
    {
        var g = Graph(
            name: "fp8", inputs: [GraphValue(name: "x", type: f32([2, 3, 6, 6]))],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: [
                "sx": Tensor(shape: [], scalars: [Float(1.5 / 448)]), "sa": Tensor(shape: [], scalars: [Float(0.01)]),
                "wq": float8([4, 3, 3, 3], magnitude: 300, using: &gen),
                "sw": .random([4], in: 0.0005...0.002, using: &gen), "bias": .random([4], using: &gen),
                "bq": float8([5, 144], magnitude: 300, using: &gen),
                "sb": .random([5], in: 0.0005...0.001, using: &gen),
                "c": .random([5], using: &gen),
            ],
            nodes: pair("x", "sx", type: inputType) + [
                Node(name: "w_dq", layer: DequantizeLayer(axis: 0), inputs: ["wq", "sw"], outputs: ["w"]),
                Node(
                    name: "conv", layer: ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1])),
                    inputs: ["x_dequantized", "w", "bias"], outputs: ["conv"]),
                Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["conv"], outputs: ["a"]),
            ] + (activationPair ? pair("a", "sa") : [])
                + [
                    Node(
                        name: "flatten", layer: ReshapeLayer(.flatten(axis: 1)),
                        inputs: [activationPair ? "a_dequantized" : "a"], outputs: ["f"])
                ] + pair("f", "sa") + [
                    Node(name: "b_dq", layer: DequantizeLayer(axis: 0), inputs: ["bq", "sb"], outputs: ["b"]),
                    Node(
                        name: "gemm", layer: MatMulLayer(transposeB: true), inputs: ["f_dequantized", "b", "c"],
                        outputs: ["y"]),
                ])
        try? g.inferTypes()
        return g
    }

    @Test func float8PairsFoldIntoFloat8Products() throws {
        var gen = SeededGenerator(seed: seed)
        let g = Self.model(&gen)
        let x = Tensor.random([2, 3, 6, 6], in: -1.5...1.5, using: &gen)
        let run = try OptimizedVersusPlain(g, ["x": x])
        let kinds = run.optimized.nodes.map(\.kind.name)
        #expect(kinds == ["convolution.int8", "reshape", "matMul.int8"], "\(kinds), seed \(seed)")
        let text = run.optimized.textForm()
        // The pair after the relu moves past the flatten (the same pair follows it) and the gemm quantizes.
        #expect(
            text.contains("input=x/\(Float(1.5 / 448)):float8e4m3fn") && text.contains("input=x/0.01:float8e4m3fn"),
            "\(text)")
        // The sums round in another order than the Q/DQ graph's float convolution: a value of `a` next to a
        // midpoint between two E4M3 numbers may round the other way (one step, 1/8 of the value at most), which
        // the gemm passes on. A wrong scale, layout or rounding rule is off by far more.
        let expected = try #require(run.outputs.first).expected.asTensor().scalars(as: Float.self)
        let largest = Double(expected.map(abs).max() ?? 0)
        run.expectSameOutputs(rtol: 0, atol: 0.03 * largest + 1e-5)
    }

    /// Without a pair between the two products nothing is rounded after a sum: the layers agree with the Q/DQ
    /// graph to float rounding.
    @Test func float8ProductsComputeTheQDQGraph() throws {
        var gen = SeededGenerator(seed: seed)
        let g = Self.model(&gen, activationPair: false)
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 3, 6, 6], in: -2...2, using: &gen)])
        let kinds = run.optimized.nodes.map(\.kind.name)
        #expect(kinds == ["convolution.int8", "reshape", "matMul.int8"], "\(kinds), seed \(seed)")
        run.expectSameOutputs(rtol: 1e-4, atol: 1e-5)
    }

    /// float8 weights with an input quantized to int8 are no product the layers define: the pass leaves them,
    /// says why, and the graph still runs as written.
    @Test func float8WeightsWithAnInt8InputStayFloat() throws {
        var gen = SeededGenerator(seed: seed)
        let g = Self.model(&gen, inputType: .int8)
        let log = RejectionLog()
        var folded = g
        _ = try QDQFolding().run(&folded, log.context)
        #expect(
            log.lines.contains("conv: not folded: float8e4m3fn weights with an input quantized to int8"),
            "\(log.lines)")
        let kinds = folded.nodes.map(\.kind.name)
        #expect(!kinds.contains("convolution.int8") && kinds.contains("matMul.int8"), "\(kinds)")
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 3, 6, 6], in: -1.5...1.5, using: &gen)])
        let expected = try #require(run.outputs.first).expected.asTensor().scalars(as: Float.self)
        run.expectSameOutputs(rtol: 0, atol: 0.03 * Double(expected.map(abs).max() ?? 0) + 1e-5)
    }

    /// The saturating round trip the layers use is ONNX QuantizeLinear then DequantizeLinear into float8e4m3fn,
    /// value for value, on fresh random numbers across the whole range, beyond it, and NaN.
    @Test func roundTripIsQuantizeLinearThenDequantizeLinear() throws {
        var gen = SeededGenerator(seed: seed)
        var values = (0..<2000).map { _ in Float(Double.random(in: -600...600, using: &gen)) }
        values += (0..<500).map { _ in Float(Double.random(in: -0.02...0.02, using: &gen)) }
        values += [0, -0, .infinity, -.infinity, .nan, 448, 464, 465, 0.001953125, 0.0009765625]
        let q = ActivationQuantization(scale: 0.75, type: .float8e4m3fn)
        try q.validate()
        let scale = Tensor(shape: [], scalars: [q.scale])
        let graph = Graph(
            name: "qdq", inputs: [GraphValue(name: "x", type: Self.f32([values.count]))],
            outputs: [GraphValue(name: "x_dequantized", type: nil)], initializers: ["s": scale],
            nodes: Self.pair("x", "s"))
        let engine = try Builder.build(graph, device: CPUDevice(threads: 1), config: BuilderConfig(optimize: false))
        let out = try engine.makeContext().run(["x": .tensor(Tensor(shape: [values.count], scalars: values))])
        let reference = try #require(out["x_dequantized"]).asTensor().scalars(as: Float.self)
        for (x, expected) in zip(values, reference) {
            let actual = q.roundTrip(x)
            #expect(actual.bitPattern == expected.bitPattern || (actual.isNaN && expected.isNaN), "\(x)")
        }
        #expect(throws: KilnError.self) {
            try ActivationQuantization(scale: 1, zeroPoint: 3, type: .float8e4m3fn).validate()
        }
    }

    /// Chains are int8: a float8 convolution reading, adding or writing quantized values is refused by its type
    /// inference, so no kernel meets one.
    @Test func float8ConvolutionsAreNeverChained() throws {
        let q = ActivationQuantization(scale: 0.01, type: .float8e4m3fn)
        let inputs = [
            LayerInput(type: .tensor(TensorType(.float32, [1, 2, 4, 4]))),
            LayerInput(type: .tensor(TensorType(.float8e4m3fn, [3, 2, 1, 1]))),
            LayerInput(type: .tensor(TensorType(.float32, [3]))),
        ]
        _ = try QuantizedConvolutionLayer(ConvolutionParameters(), input: q).inferTypes(inputs)
        #expect(throws: KilnError.self) {
            try QuantizedConvolutionLayer(ConvolutionParameters(), input: q, output: q, writesQuantized: true)
                .inferTypes(inputs)
        }
        var quantizedX = inputs
        quantizedX[0] = LayerInput(type: .tensor(TensorType(.float8e4m3fn, [1, 2, 4, 4])))
        #expect(throws: KilnError.self) {
            try QuantizedConvolutionLayer(ConvolutionParameters(), input: q).inferTypes(quantizedX)
        }
    }
}
