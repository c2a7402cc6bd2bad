/// How a quantized layer turns its float input into 8-bit numbers on the fly: integers
/// `q = saturate(roundHalfEven(x / scale) + zeroPoint)` in `type`'s range, or float8 E4M3 numbers
/// `q = saturate(e4m3(x / scale))` (ONNX QuantizeLinear's rules), so an explicitly quantized model and a
/// calibrated one run the same layers.
public struct ActivationQuantization: Sendable, Hashable, Codable, CustomStringConvertible {
    public var scale: Float
    public var zeroPoint: Int
    /// `.int8` (symmetric calibration), `.uint8` (zero points from quantized ONNX models) or `.float8e4m3fn`
    /// (explicitly quantized FP8 models; zero point 0).
    public var type: DType

    public init(scale: Float, zeroPoint: Int = 0, type: DType = .int8) {
        self.scale = scale
        self.zeroPoint = zeroPoint
        self.type = type
    }

    /// The smallest and largest quantized integer (float8 has none: its range is ±448).
    public var range: ClosedRange<Int> { type == .uint8 ? 0...255 : -128...127 }

    /// Whether the quantized numbers are float8 E4M3 rather than integers.
    public var isFloat8: Bool { type == .float8e4m3fn }

    /// `x` quantized and dequantized again: the value the quantized tensor stands for (NaN quantizes to 0 in
    /// the integer types, as the quantize layer does, and stays NaN in float8).
    @inlinable
    public func roundTrip(_ x: Float) -> Float {
        if isFloat8 { return Self.e4m3(x / scale) * scale }
        let r = (x / scale).rounded(.toNearestOrEven) + Float(zeroPoint)
        guard !r.isNaN else { return -Float(zeroPoint) * scale }
        return (min(max(r, Float(range.lowerBound)), Float(range.upperBound)) - Float(zeroPoint)) * scale
    }

    /// `x` rounded to the nearest float8 E4M3 number (ties to even), saturating at ±448; NaN stays NaN. Below
    /// 2^-6 the numbers are steps of 2^-9, above they keep 3 bits of mantissa: float arithmetic, exact, as the
    /// GPU kernels round (the same as `MiniFloatFormat`'s encoding, which the tests check over the float range).
    @inlinable
    public static func e4m3(_ x: Float) -> Float {
        if x.isNaN { return x }
        let a = min(abs(x), 448)
        let rounded: Float
        if a < 0.015625 {
            rounded = (a * 512).rounded(.toNearestOrEven) / 512
        } else {
            let quantum = Float(sign: .plus, exponent: a.exponent - 3, significand: 1)
            rounded = (a / quantum).rounded(.toNearestOrEven) * quantum
        }
        return x.sign == .minus ? -rounded : rounded
    }

    /// The E4M3 format (`MiniFloatFormat`).
    public static let float8 = MiniFloatFormat(.float8e4m3fn)!

    /// Throws unless the scale is positive and finite, the type is 8-bit and the zero point is in its range
    /// (0 for float8).
    public func validate() throws {
        guard scale.isFinite, scale > 0 else {
            throw KilnError.invalidArgument("activation scale \(scale) is not a positive finite number")
        }
        guard type == .int8 || type == .uint8 || isFloat8 else {
            throw KilnError.unsupported(
                "activations quantized to \(type) (int8, uint8 and float8e4m3fn are supported)")
        }
        if isFloat8 {
            guard zeroPoint == 0 else { throw KilnError.invalidArgument("a float8 zero point must be 0") }
            return
        }
        guard range.contains(zeroPoint) else {
            throw KilnError.invalidArgument("zero point \(zeroPoint) is outside \(type)'s range")
        }
    }

    public var description: String {
        if zeroPoint == 0 && type != .uint8 { return type == .int8 ? "x/\(scale)" : "x/\(scale):\(type)" }
        return "x/\(scale)+\(zeroPoint):\(type)"
    }
}

/// A convolution in 8 bits: the float input is quantized with `input`, multiplied by int8 weights
/// (symmetric, one scale per output channel) with int32 accumulation, and the sum is dequantized
/// (`acc * inputScale * weightScale[m]`) before the bias, the residual and the activation, which stay float.
/// With `output`, the result is then quantized and dequantized (an explicitly quantized model's Q/DQ pair after
/// the layer, done while the result is in cache). Inputs: X float `[N, C, spatial...]`, W int8 `[M, C/group, k...]`,
/// weight scales float `[M]`, optional bias float `[M]`, and with `epilogue.residual` a residual (input 4) of the
/// output's shape.
///
/// In a chain of int8 layers (`Int8Chaining`) activations stay quantized between them: X may hold `input`'s
/// int8 values already, the residual `residualQuantization`'s, and with `writesQuantized` the output holds
/// `output`'s int8 values instead of floats. With `channelsLast` (`ChannelsLastLayout`) X, the residual and
/// the output are `[N, spatial..., C]` and W is `[M, k..., C/group]`; with `channelsFirstInput` too, X stays
/// `[N, C, spatial...]` (a network's stem reading the quantized image as it is, where the device's kernel loads
/// it so: no transpose in front).
///
/// With `input` of type float8e4m3fn (explicitly quantized FP8 models) the weights are float8e4m3fn too and
/// the products are summed in float32; such a layer reads and writes floats only (chains are int8).
public struct QuantizedConvolutionLayer: Layer {
    public static let kind = LayerKind("convolution.int8")
    public var parameters: ConvolutionParameters
    public var epilogue: Epilogue
    public var input: ActivationQuantization
    public var output: ActivationQuantization?
    /// The residual's quantization when it holds int8 values; nil: a float residual.
    public var residualQuantization: ActivationQuantization?
    /// The output holds `output`'s quantized values (its type), not floats.
    public var writesQuantized: Bool
    /// Activations and weights stored channels-last (`ChannelsLast`).
    public var channelsLast: Bool
    /// With `channelsLast`: X is channels-first all the same.
    public var channelsFirstInput: Bool

    public init(
        _ parameters: ConvolutionParameters, input: ActivationQuantization, epilogue: Epilogue = Epilogue(),
        output: ActivationQuantization? = nil, residualQuantization: ActivationQuantization? = nil,
        writesQuantized: Bool = false, channelsLast: Bool = false, channelsFirstInput: Bool = false
    ) {
        self.parameters = parameters
        self.input = input
        self.epilogue = epilogue
        self.output = output
        self.residualQuantization = residualQuantization
        self.writesQuantized = writesQuantized
        self.channelsLast = channelsLast
        self.channelsFirstInput = channelsFirstInput
    }

    private enum CodingKeys: String, CodingKey {
        case parameters, epilogue, input, output, residualQuantization, writesQuantized, channelsLast
        case channelsFirstInput
    }

    /// Plans written before `channelsFirstInput` existed lack it (false).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            try c.decode(ConvolutionParameters.self, forKey: .parameters),
            input: try c.decode(ActivationQuantization.self, forKey: .input),
            epilogue: try c.decode(Epilogue.self, forKey: .epilogue),
            output: try c.decodeIfPresent(ActivationQuantization.self, forKey: .output),
            residualQuantization: try c.decodeIfPresent(ActivationQuantization.self, forKey: .residualQuantization),
            writesQuantized: try c.decode(Bool.self, forKey: .writesQuantized),
            channelsLast: try c.decode(Bool.self, forKey: .channelsLast),
            channelsFirstInput: try c.decodeIfPresent(Bool.self, forKey: .channelsFirstInput) ?? false)
    }

    /// The inputs a channels-last form stores channels-last: X (unless `channelsFirstInput`), W and the
    /// residual.
    public var channelsLastInputs: Set<Int> { channelsFirstInput ? [1, 4] : [0, 1, 4] }

    /// The type of values X holds: float32, or `input`'s type when X arrives quantized.
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        try checkOperands(inputs, weightRank: nil, input, output, quantizedInput: !input.isFloat8)
        if input.isFloat8, writesQuantized || residualQuantization != nil {
            throw KilnError.unsupported("a float8 convolution reads and writes float values only (chains are int8)")
        }
        try residualQuantization?.validate()
        if writesQuantized, output == nil {
            throw KilnError.invalidArgument("convolution.int8 writes quantized values but has no output quantization")
        }
        if let residualQuantization, epilogue.residual, inputs.count > 4, let r = inputs[4].tensorType,
            r.dtype != residualQuantization.type
        {
            throw KilnError.invalidArgument(
                "the quantized residual is \(r.dtype), \(residualQuantization.type) expected")
        }
        let dtype = writesQuantized ? output?.type ?? .float32 : .float32
        let types =
            channelsLast
            ? try ChannelsLast.inferTypes(inputs, permuting: channelsLastInputs) {
                [try parameters.forwardOutputType($0)]
            }
            : [try parameters.forwardOutputType(inputs)]
        return types.map { type in type?.tensorType.map { .tensor(TensorType(dtype, $0.shape)) } ?? type }
    }

    public var description: String {
        var parts = [parameters.description, "input=\(input)"].filter { !$0.isEmpty }
        if !epilogue.isEmpty { parts.append("epilogue=\(epilogue)") }
        if let residualQuantization { parts.append("residual=\(residualQuantization)") }
        if let output { parts.append("output=\(output)\(writesQuantized ? ":stored" : "")") }
        if channelsLast { parts.append(channelsFirstInput ? "layout=nchw>nhwc" : "layout=nhwc") }
        return parts.joined(separator: ",")
    }
}

/// A matrix product in 8 bits: `A [..., K]` (float, quantized with `input`) times the int8 weights `B [N, K]`
/// (one row per output column, symmetric, one scale per row), int32 accumulation, dequantized before the
/// bias, the residual and the activation (then, with `output`, quantize-dequantized). Inputs: A float, B int8
/// `[N, K]`, weight scales float `[N]`, optional bias float `[N]`, and with `epilogue.residual` a residual
/// (input 4) of the output's shape. With `input` of type float8e4m3fn, B is float8e4m3fn and the sums float32.
public struct QuantizedMatMulLayer: Layer {
    public static let kind = LayerKind("matMul.int8")
    public var epilogue: Epilogue
    public var input: ActivationQuantization
    public var output: ActivationQuantization?

    public init(input: ActivationQuantization, epilogue: Epilogue = Epilogue(), output: ActivationQuantization? = nil) {
        self.input = input
        self.epilogue = epilogue
        self.output = output
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        try checkOperands(inputs, weightRank: 2, input, output)
        guard let a = inputs.first?.tensorType, inputs.count > 1, let b = inputs[1].tensorType else { return [nil] }
        guard var shape = a.shape, let sb = b.shape, !shape.isEmpty else { return [.tensor(TensorType(a.dtype, nil))] }
        if let k = shape.last?.value, let kb = sb[1].value, k != kb {
            throw KilnError.shapeMismatch("matMul.int8: A has \(k) columns, the weights \(kb)")
        }
        shape[shape.count - 1] = sb[0]
        return [.tensor(TensorType(a.dtype, shape))]
    }

    public var description: String {
        var parts = ["input=\(input)"]
        if !epilogue.isEmpty { parts.append("epilogue=\(epilogue)") }
        if let output { parts.append("output=\(output)") }
        return parts.joined(separator: ",")
    }
}

/// The shared checks: valid quantizations, float input (or, with `quantizedInput`, one of `input`'s type),
/// 8-bit weights of `rank` (any when nil): float8e4m3fn with a float8 input quantization, else int8; float
/// scales.
private func checkOperands(
    _ inputs: [LayerInput], weightRank rank: Int?, _ input: ActivationQuantization, _ output: ActivationQuantization?,
    quantizedInput: Bool = false
) throws {
    try input.validate()
    try output?.validate()
    guard inputs.count >= 3 else { throw KilnError.invalidArgument("a quantized layer needs X, W and weight scales") }
    if let x = inputs[0].tensorType, x.dtype != .float32, !(quantizedInput && x.dtype == input.type) {
        throw KilnError.unsupported(
            "quantized layer input of \(x.dtype) (float32\(quantizedInput ? " or \(input.type)" : "") expected)")
    }
    if let w = inputs[1].tensorType {
        let expected: DType = input.isFloat8 ? .float8e4m3fn : .int8
        guard w.dtype == expected else {
            throw KilnError.invalidArgument("quantized weights are \(w.dtype), not \(expected)")
        }
        if let rank, let shape = w.shape, shape.count != rank {
            throw KilnError.shapeMismatch("quantized weights have rank \(shape.count), \(rank) expected")
        }
    }
    for index in 2..<min(inputs.count, 4) {
        if let t = inputs[index].tensorType, t.dtype != .float32 {
            throw KilnError.invalidArgument("quantized layer input \(index) is \(t.dtype), float32 expected")
        }
    }
}
