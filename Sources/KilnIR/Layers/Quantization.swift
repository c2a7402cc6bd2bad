/// Maps real numbers to a quantized type: `saturate(round(x / scale) + zeroPoint)` (ONNX QuantizeLinear).
/// Scale and zero point are per tensor (one element), per axis (1-D along `axis`) or blocked (same rank as
/// the input, `blockSize` elements of `axis` sharing one value).
public struct QuantizeLayer: Layer {
    public static let kind = LayerKind("quantize")
    public var axis: Int
    /// 0 unless blocked.
    public var blockSize: Int
    /// The output type when no zero point is given (a given zero point's type wins).
    public var outputType: DType
    /// Float8 outputs clamp out-of-range values to the largest finite value instead of inf/NaN.
    public var saturate: Bool
    /// The type the division is computed in; nil: the input's type.
    public var precision: DType?

    public init(
        axis: Int = 1, blockSize: Int = 0, outputType: DType = .uint8, saturate: Bool = true, precision: DType? = nil
    ) {
        self.axis = axis
        self.blockSize = blockSize
        self.outputType = outputType
        self.saturate = saturate
        self.precision = precision
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let dtype = (inputs.count > 2 ? inputs[2].tensorType?.dtype : nil) ?? outputType
        return [.tensor(TensorType(dtype, inputs.first?.tensorType?.shape))]
    }

    public var description: String {
        var parts = ["axis=\(axis)", "to=\(outputType)"]
        if blockSize > 0 { parts.append("blockSize=\(blockSize)") }
        if !saturate { parts.append("saturate=false") }
        if let precision { parts.append("precision=\(precision)") }
        return parts.joined(separator: ", ")
    }
}

/// Maps quantized values back to real numbers: `(x - zeroPoint) * scale` (ONNX DequantizeLinear).
public struct DequantizeLayer: Layer {
    public static let kind = LayerKind("dequantize")
    public var axis: Int
    public var blockSize: Int
    /// nil: the scale's type.
    public var outputType: DType?

    public init(axis: Int = 1, blockSize: Int = 0, outputType: DType? = nil) {
        self.axis = axis
        self.blockSize = blockSize
        self.outputType = outputType
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = outputType ?? (inputs.count > 1 ? inputs[1].tensorType?.dtype : nil) else { return [nil] }
        return [.tensor(TensorType(dtype, inputs.first?.tensorType?.shape))]
    }

    public var description: String {
        var parts = ["axis=\(axis)"]
        if blockSize > 0 { parts.append("blockSize=\(blockSize)") }
        if let outputType { parts.append("to=\(outputType)") }
        return parts.joined(separator: ", ")
    }
}

/// Quantizes a float tensor to uint8 with a scale and zero point computed from its range (ONNX
/// DynamicQuantizeLinear). Outputs: y, scale, zero point.
public struct DynamicQuantizeLayer: Layer {
    public static let kind = LayerKind("quantize.dynamic")
    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [
            .tensor(TensorType(.uint8, inputs.first?.tensorType?.shape)),
            .tensor(TensorType(inputs.first?.tensorType?.dtype ?? .float32, [])),
            .tensor(TensorType(.uint8, [])),
        ]
    }
}

/// Matrix product of quantized tensors with requantized output (ONNX QLinearMatMul). Inputs: a, a_scale,
/// a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
public struct QLinearMatMulLayer: Layer {
    public static let kind = LayerKind("qlinear.matMul")
    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count >= 8, let a = inputs[0].tensorType, let b = inputs[3].tensorType else { return [nil] }
        let dtype = inputs[7].tensorType?.dtype ?? a.dtype
        guard let sa = a.shape, let sb = b.shape, sa.count >= 2, sb.count >= 2 else {
            return [.tensor(TensorType(dtype, nil))]
        }
        let batch = try Broadcast.dims(Array(sa.dropLast(2)), Array(sb.dropLast(2)))
        return [.tensor(TensorType(dtype, batch + [sa[sa.count - 2], sb[sb.count - 1]]))]
    }
}

/// Convolution of quantized tensors with requantized output (ONNX QLinearConv). Inputs: x, x_scale,
/// x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, optional int32 bias.
public struct QLinearConvLayer: Layer {
    public static let kind = LayerKind("qlinear.conv")
    /// Per spatial axis; empty means the defaults (1 for strides/dilations, 0 for pads).
    public var strides: [Int]
    public var dilations: [Int]
    /// Begin pads then end pads, ONNX order.
    public var pads: [Int]
    public var group: Int
    /// NOTSET, SAME_UPPER, SAME_LOWER or VALID.
    public var autoPad: String

    public init(strides: [Int], dilations: [Int], pads: [Int], group: Int, autoPad: String) {
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.group = group
        self.autoPad = autoPad
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        let dtype = (inputs.count > 7 ? inputs[7].tensorType?.dtype : nil) ?? x.dtype
        guard let xs = x.concreteShape, inputs.count > 3, let ws = inputs[3].tensorType?.concreteShape,
            xs.count == ws.count, xs.count >= 3
        else {
            return [.tensor(TensorType(dtype, x.shape.map { $0.map { _ in Dim.unknown } }))]
        }
        let geometry = try QLinearConvGeometry(layer: self, input: xs, weight: ws)
        return [.tensor(TensorType(dtype, dims: geometry.outputShape))]
    }

    public var description: String {
        var parts: [String] = []
        if !strides.isEmpty { parts.append("strides=\(strides)") }
        if !dilations.isEmpty { parts.append("dilations=\(dilations)") }
        if !pads.isEmpty { parts.append("pads=\(pads)") }
        if group != 1 { parts.append("group=\(group)") }
        if autoPad != "NOTSET" { parts.append("autoPad=\(autoPad)") }
        return parts.joined(separator: ", ")
    }
}

/// The resolved geometry of a QLinearConv: per-axis stride, dilation, begin pad and output size.
public struct QLinearConvGeometry: Sendable, Codable {
    public var strides: [Int]
    public var dilations: [Int]
    public var padsBegin: [Int]
    public var outputShape: [Int]

    public init(layer: QLinearConvLayer, input: [Int], weight: [Int]) throws {
        let spatial = input.count - 2
        guard weight.count == input.count, spatial >= 1 else {
            throw KilnError.shapeMismatch("QLinearConv input \(input) and weight \(weight) ranks differ")
        }
        strides = layer.strides.isEmpty ? Array(repeating: 1, count: spatial) : layer.strides
        dilations = layer.dilations.isEmpty ? Array(repeating: 1, count: spatial) : layer.dilations
        var pads = layer.pads.isEmpty ? Array(repeating: 0, count: 2 * spatial) : layer.pads
        guard strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial,
            strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }), pads.allSatisfy({ $0 >= 0 })
        else {
            throw KilnError.invalidModel(
                "QLinearConv strides/dilations/pads must be positive and match \(spatial) spatial axes")
        }
        guard layer.group >= 1, input[1] == weight[1] * layer.group, weight[0] % layer.group == 0 else {
            throw KilnError.shapeMismatch(
                "QLinearConv channels: input \(input), weight \(weight), group \(layer.group)")
        }
        var out = [input[0], weight[0]]
        for i in 0..<spatial {
            let kernel = (weight[i + 2] - 1) * dilations[i] + 1
            let size = input[i + 2]
            if layer.autoPad == "SAME_UPPER" || layer.autoPad == "SAME_LOWER" {
                let o = (size + strides[i] - 1) / strides[i]
                let total = max(0, (o - 1) * strides[i] + kernel - size)
                let small = total / 2
                pads[i] = layer.autoPad == "SAME_UPPER" ? small : total - small
                pads[i + spatial] = total - pads[i]
            } else if layer.autoPad == "VALID" {
                pads[i] = 0
                pads[i + spatial] = 0
            }
            let o = (size + pads[i] + pads[i + spatial] - kernel) / strides[i] + 1
            guard o >= 0 else { throw KilnError.shapeMismatch("QLinearConv kernel larger than padded input") }
            out.append(o)
        }
        padsBegin = Array(pads[..<spatial])
        outputShape = out
    }
}
