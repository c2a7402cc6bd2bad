import KilnIR
import KilnTestSupport
import Testing

/// convolution.int8 and matMul.int8 against the float layers run on the dequantized operands (the reference
/// kernels), on fresh random inputs: the integer path must give the same numbers up to float rounding.
struct QuantizedProductTests {
    /// Each run draws a new seed; a failure prints it.
    let seed = SeededGenerator.testSeed()

    /// `(q - zeroPoint) * scale` with `q` quantized as the layers quantize.
    static func fakeQuantized(_ x: Tensor, _ q: ActivationQuantization) -> Tensor {
        let values = x.scalars(as: Float.self).map { v -> Float in
            let r = (v / q.scale).rounded(.toNearestOrEven) + Float(q.zeroPoint)
            let clamped = min(max(r, Float(q.range.lowerBound)), Float(q.range.upperBound))
            return (clamped - Float(q.zeroPoint)) * q.scale
        }
        return Tensor(shape: x.shape, scalars: values)
    }

    /// Random int8 weights in [-127, 127] with positive per-row scales, and their float values.
    static func weights(_ shape: [Int], _ gen: inout SeededGenerator) -> (Tensor, Tensor, Tensor) {
        let q = Tensor.randomIntegers(Int8.self, shape, in: -127...127, using: &gen)
        let rows = shape[0]
        let scales = Tensor.random([rows], in: 0.001...0.05, using: &gen)
        let per = q.count / rows
        let s = scales.scalars(as: Float.self)
        let float = q.scalars(as: Int8.self).enumerated().map { Float($0.element) * s[$0.offset / per] }
        return (q, scales, Tensor(shape: shape, scalars: float))
    }

    static func close(_ a: Tensor, _ b: Tensor, _ seed: UInt64) {
        #expect(a.shape == b.shape, "seed \(seed)")
        let x = a.scalars(as: Float.self)
        let y = b.scalars(as: Float.self)
        let scale = max(y.map(abs).max() ?? 0, 1e-3)
        let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
        // Float sums of the dequantized terms round differently from the exact integer sum.
        #expect(worst <= 1e-5 * scale + 1e-6, "max diff \(worst) of \(scale), seed \(seed)")
    }

    @Test(arguments: [
        // (input, weights, parameters, epilogue)
        ([2, 3, 7, 6], [4, 3, 3, 3], ConvolutionParameters(pads: [1, 1, 1, 1]), Epilogue(activation: .relu)),
        (
            [1, 4, 9, 9], [6, 2, 3, 2], ConvolutionParameters(strides: [2, 1], pads: [1, 0, 0, 1], group: 2), Epilogue()
        ),
        (
            [2, 5, 8, 8], [5, 1, 3, 3], ConvolutionParameters(dilations: [2, 2], pads: [2, 2, 2, 2], group: 5),
            Epilogue(residual: true, activation: .clip(min: 0, max: 6))
        ),
        ([1, 3, 11], [2, 3, 4], ConvolutionParameters(strides: [3]), Epilogue(activation: .silu)),
        ([1, 8, 5, 5], [16, 8, 1, 1], ConvolutionParameters(), Epilogue(residual: true)),
        // 288-deep rows (eighteen 16-wide steps with AVX2) and 7 output channels (a group of four, then three).
        ([2, 32, 6, 5], [7, 32, 3, 3], ConvolutionParameters(strides: [2, 1], pads: [1, 1, 0, 1]), Epilogue()),
    ])
    func convolutionMatchesTheFloatLayerOnDequantizedOperands(
        _ xShape: [Int], _ wShape: [Int], _ parameters: ConvolutionParameters, _ epilogue: Epilogue
    ) throws {
        var gen = SeededGenerator(seed: seed)
        for activation in [
            ActivationQuantization(scale: 0.02), ActivationQuantization(scale: 0.015, zeroPoint: 100, type: .uint8),
        ] {
            // Some values beyond the range, to exercise saturation.
            let x = Tensor.random(xShape, in: -3...3, using: &gen)
            let (wq, scales, wFloat) = Self.weights(wShape, &gen)
            let bias = Tensor.random([wShape[0]], in: -1...1, using: &gen)
            let geometry = try parameters.resolve(input: Array(xShape.dropFirst(2)), kernel: Array(wShape.dropFirst(2)))
            let outShape = [xShape[0], wShape[0]] + geometry.output
            let residual = Tensor.random(outShape, in: -1...1, using: &gen)
            var inputs: [Value?] = [.tensor(x), .tensor(wq), .tensor(scales), .tensor(bias)]
            var reference: [Value?] = [.tensor(Self.fakeQuantized(x, activation)), .tensor(wFloat), .tensor(bias)]
            if epilogue.residual {
                inputs.append(.tensor(residual))
                reference.append(.tensor(residual))
            }
            let got = try LayerRunner.run(
                QuantizedConvolutionLayer(parameters, input: activation, epilogue: epilogue), inputs: inputs)[0]
                .asTensor()
            let expected = try LayerRunner.run(ConvolutionLayer(parameters, epilogue: epilogue), inputs: reference)[0]
                .asTensor()
            Self.close(got, expected, seed)
        }
    }

    @Test func outputRequantizationRoundsTheFinishedResult() throws {
        var gen = SeededGenerator(seed: seed)
        let x = Tensor.random([2, 3, 6, 5], in: -2...2, using: &gen)
        let (wq, scales, wFloat) = Self.weights([4, 3, 3, 3], &gen)
        let bias = Tensor.random([4], using: &gen)
        let q = ActivationQuantization(scale: 0.02)
        let out = ActivationQuantization(scale: 0.05, zeroPoint: 10, type: .uint8)
        let parameters = ConvolutionParameters(pads: [1, 1, 1, 1])
        let epilogue = Epilogue(activation: .relu)
        let got = try LayerRunner.run(
            QuantizedConvolutionLayer(parameters, input: q, epilogue: epilogue, output: out), x, wq, scales, bias)
        let float = try LayerRunner.run(
            ConvolutionLayer(parameters, epilogue: epilogue), Self.fakeQuantized(x, q), wFloat, bias)
        let expected = Self.fakeQuantized(float, out)
        // Sums in another order can put a value on the other side of a rounding boundary: at most one step,
        // and rarely.
        let differences = zip(got.scalars(as: Float.self), expected.scalars(as: Float.self)).map { abs($0 - $1) }
        #expect(differences.allSatisfy { $0 <= out.scale * 1.001 }, "seed \(seed)")
        #expect(differences.filter { $0 > 1e-6 }.count <= differences.count / 100, "seed \(seed)")
        // Every value is on the output grid: (v / scale) + zeroPoint is an integer in [0, 255].
        for v in got.scalars(as: Float.self) {
            let level = v / out.scale + Float(out.zeroPoint)
            #expect(abs(level - level.rounded()) < 1e-3 && level >= -1e-3 && level <= 255.001, "seed \(seed)")
        }
    }

    @Test func convolutionWithoutBiasReadsAnAbsentInput() throws {
        var gen = SeededGenerator(seed: seed)
        let x = Tensor.random([1, 2, 4, 4], using: &gen)
        let (wq, scales, wFloat) = Self.weights([3, 2, 3, 3], &gen)
        let q = ActivationQuantization(scale: 0.01)
        let got = try LayerRunner.run(
            QuantizedConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1]), input: q),
            inputs: [.tensor(x), .tensor(wq), .tensor(scales), nil])[0].asTensor()
        let expected = try LayerRunner.run(
            ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1])), Self.fakeQuantized(x, q), wFloat)
        Self.close(got, expected, seed)
    }

    @Test(arguments: [[5, 7], [2, 3, 16], [1, 1, 1]])
    func matMulMatchesTheFloatLayerOnDequantizedOperands(_ aShape: [Int]) throws {
        var gen = SeededGenerator(seed: seed)
        let k = aShape.last!
        let n = 6
        let q = ActivationQuantization(scale: 0.03, zeroPoint: -7)
        let a = Tensor.random(aShape, in: -4...4, using: &gen)
        let (bq, scales, bFloat) = Self.weights([n, k], &gen)
        let bias = Tensor.random([n], using: &gen)
        let residual = Tensor.random(Array(aShape.dropLast()) + [n], using: &gen)
        let epilogue = Epilogue(residual: true, activation: .gelu(tanh: false))
        let got = try LayerRunner.run(
            QuantizedMatMulLayer(input: q, epilogue: epilogue),
            inputs: [.tensor(a), .tensor(bq), .tensor(scales), .tensor(bias), .tensor(residual)])[0].asTensor()
        // The float reference: A·Bᵀ + bias + residual, then the activation.
        let product = try LayerRunner.run(
            MatMulLayer(transposeB: true, epilogue: Epilogue(activation: nil)),
            inputs: [.tensor(Self.fakeQuantized(a, q)), .tensor(bFloat), .tensor(bias)])[0].asTensor()
        let summed = try LayerRunner.run(BinaryLayer(.add), product, residual)
        let expected = try LayerRunner.run(UnaryLayer(.gelu(tanh: false)), summed)
        Self.close(got, expected, seed)
    }

    /// No input channels (a plan can say so): every sum is empty, so the output is the bias through the epilogue.
    @Test func anEmptyReductionGivesTheBias() throws {
        let bias = Tensor(shape: [2], scalars: [Float(-1), 2])
        let y = try LayerRunner.run(
            QuantizedConvolutionLayer(
                ConvolutionParameters(), input: .init(scale: 0.1), epilogue: .init(activation: .relu)),
            Tensor(zeros: .float32, shape: [1, 0, 2, 2]), Tensor(zeros: .int8, shape: [2, 0, 1, 1]),
            Tensor(shape: [2], scalars: [Float(0.1), 0.1]), bias)
        #expect(y.scalars(as: Float.self) == [0, 0, 0, 0, 2, 2, 2, 2])
        let m = try LayerRunner.run(
            QuantizedMatMulLayer(input: .init(scale: 0.1)), Tensor(zeros: .float32, shape: [3, 0]),
            Tensor(zeros: .int8, shape: [2, 0]), Tensor(shape: [2], scalars: [Float(0.1), 0.1]), bias)
        #expect(m.scalars(as: Float.self) == [-1, 2, -1, 2, -1, 2])
    }

    @Test func badOperandsAreErrors() throws {
        let x = Tensor(zeros: .float32, shape: [1, 2, 3, 3])
        let w = Tensor(zeros: .float32, shape: [1, 2, 1, 1])
        #expect(throws: KilnError.self) {
            try LayerRunner.run(
                QuantizedConvolutionLayer(ConvolutionParameters(), input: .init(scale: 1)), x, w,
                Tensor(zeros: .float32, shape: [1]))
        }
        #expect(throws: KilnError.self) {
            try LayerRunner.run(
                QuantizedConvolutionLayer(ConvolutionParameters(), input: .init(scale: 0)), x,
                Tensor(zeros: .int8, shape: [1, 2, 1, 1]), Tensor(zeros: .float32, shape: [1]))
        }
        #expect(throws: KilnError.self) {
            try LayerRunner.run(
                QuantizedMatMulLayer(input: .init(scale: 1)), Tensor(zeros: .float32, shape: [2, 3]),
                Tensor(zeros: .int8, shape: [4, 5]), Tensor(zeros: .float32, shape: [4]))
        }
    }
}
