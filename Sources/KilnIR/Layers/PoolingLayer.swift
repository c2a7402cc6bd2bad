/// Pooling over the spatial axes of an N x C x spatial tensor: ONNX MaxPool, AveragePool, LpPool and their
/// Global forms (a nil window pools each whole plane). Max pooling may output int64 indices into the flattened
/// input (row-major, or column-major over the spatial axes when `columnMajorIndices`). With `dequantizing`,
/// global average pooling reads quantized values and averages the floats they stand for (`DequantizedPooling`:
/// the dequantize at the end of an int8 chain folded in, so the pool reads one byte an element).
public struct PoolLayer: Layer {
    public static let kind = LayerKind("pool")

    public enum Op: Sendable, Equatable, Codable {
        case max
        case average(countIncludePad: Bool)
        case lp(p: Float)
    }

    public var op: Op
    /// nil for global pooling.
    public var window: PoolGeometry?
    public var columnMajorIndices: Bool
    /// Whether max pooling also produces its indices output (skipped when nothing reads it).
    public var outputsIndices: Bool
    /// Input and output stored `[N, spatial..., C]` (`ChannelsLast`); never with the indices output.
    public var channelsLast: Bool
    /// The input's quantization and the float type of the output, where the input holds quantized values.
    public var dequantizing: Dequantizing?

    /// How a pool over quantized values reads them: `(q - zeroPoint) · scale`, averaged in float32 and stored as
    /// `output`.
    public struct Dequantizing: Sendable, Hashable, Codable {
        public var input: ActivationQuantization
        public var output: DType

        public init(input: ActivationQuantization, output: DType) {
            self.input = input
            self.output = output
        }
    }

    public init(
        op: Op, window: PoolGeometry?, columnMajorIndices: Bool = false, outputsIndices: Bool = false,
        channelsLast: Bool = false, dequantizing: Dequantizing? = nil
    ) {
        self.op = op
        self.window = window
        self.columnMajorIndices = columnMajorIndices
        self.outputsIndices = outputsIndices
        self.channelsLast = channelsLast
        self.dequantizing = dequantizing
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        if let dequantizing {
            guard window == nil, case .average = op, !outputsIndices,
                [.int8, .uint8].contains(dequantizing.input.type),
                dequantizing.output.isFloatingPoint
            else {
                throw KilnError.invalidArgument(
                    "a dequantizing pool is a global average over int8 or uint8 values into a float type")
            }
            if let x = inputs.first?.tensorType, x.dtype != dequantizing.input.type {
                throw KilnError.invalidArgument(
                    "the dequantizing pool's input is \(x.dtype.onnxName), \(dequantizing.input.type.onnxName) expected"
                )
            }
        }
        let types = try storedTypes(inputs)
        guard let dequantizing else { return types }
        return types.map { type in type?.tensorType.map { .tensor(TensorType(dequantizing.output, $0.shape)) } ?? type }
    }

    private func storedTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard channelsLast else { return try channelsFirstTypes(inputs) }
        guard !outputsIndices else {
            throw KilnError.invalidArgument("channels-last pooling does not produce indices")
        }
        return try ChannelsLast.inferTypes(inputs, permuting: [0]) { try channelsFirstTypes($0) }
    }

    private func channelsFirstTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil, nil] }
        guard let shape = input.shape else {
            return [.tensor(TensorType(input.dtype, nil)), .tensor(TensorType(.int64, nil))]
        }
        guard shape.count >= 2 else {
            throw KilnError.shapeMismatch("pooling needs an N x C x ... input, got rank \(shape.count)")
        }
        var out = Array(shape[..<2])
        let spatial = Array(shape[2...])
        if let window {
            try window.validate(spatialRank: spatial.count)
            let known = spatial.compactMap(\.value)
            if known.count == spatial.count {
                out += try window.resolve(known).output.map { Dim.value($0) }
            } else {
                out += Array(repeating: Dim.unknown, count: spatial.count)
            }
        } else {
            out += Array(repeating: Dim.value(1), count: spatial.count)
        }
        return [.tensor(TensorType(input.dtype, out)), .tensor(TensorType(.int64, out))]
    }

    public var description: String {
        var parts: [String]
        switch op {
        case .max: parts = ["op=max"]
        case .average(let include): parts = ["op=average"] + (include ? ["count_include_pad=1"] : [])
        case .lp(let p): parts = ["op=lp p=\(p)"]
        }
        if let window { parts.append(window.description) } else { parts.append("global") }
        if outputsIndices { parts.append("indices=1" + (columnMajorIndices ? " storage_order=1" : "")) }
        if channelsLast { parts.append("layout=nhwc") }
        if let dequantizing { parts.append("dequantizing=\(dequantizing.input)>\(dequantizing.output.onnxName)") }
        return parts.joined(separator: " ")
    }
}

/// Scatters pooled values back to the positions their indices name (ONNX MaxUnpool). Inputs: x, indices
/// (int64, flattened positions in the output), and optionally the output shape.
public struct MaxUnpoolLayer: Layer {
    public static let kind = LayerKind("maxUnpool")

    public var window: PoolGeometry

    public init(window: PoolGeometry) { self.window = window }

    /// The default output spatial size for input spatial size `input`: the inverse of the pool size formula.
    public func defaultOutput(_ input: [Int]) -> [Int] {
        input.indices.map { i in
            (input[i] - 1) * window.strides[i] + window.kernel[i] - window.pads[i] - window.pads[i + input.count]
        }
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        if inputs.count > 2, inputs[2].isPresent {
            guard let shape = inputs[2].constant else { return [.tensor(TensorType(input.dtype, nil))] }
            return [.tensor(TensorType(input.dtype, dims: try shape.intValues()))]
        }
        guard let shape = input.shape, shape.count >= 2 else { return [.tensor(TensorType(input.dtype, nil))] }
        let spatial = shape[2...].compactMap(\.value)
        guard spatial.count == shape.count - 2 else {
            return [
                .tensor(TensorType(input.dtype, Array(shape[..<2]) + Array(repeating: .unknown, count: spatial.count)))
            ]
        }
        return [.tensor(TensorType(input.dtype, Array(shape[..<2]) + defaultOutput(spatial).map { Dim.value($0) }))]
    }

    public var description: String { window.description }
}

/// Pools each region of interest to a fixed-size grid (ONNX MaxRoiPool and RoiAlign). Inputs: x (N x C x H x
/// W), rois (R x 4), and for RoiAlign the batch index of each roi (R). Output: R x C x height x width.
public struct RoiPoolLayer: Layer {
    public static let kind = LayerKind("roiPool")

    public enum Method: Sendable, Equatable, Codable {
        /// MaxRoiPool: rois are (batch, x1, y1, x2, y2), quantized to the feature grid.
        case quantizedMax
        /// RoiAlign: bilinear samples averaged or maxed per bin.
        case align(max: Bool, samplingRatio: Int, halfPixel: Bool)
    }

    public var method: Method
    public var outputHeight: Int
    public var outputWidth: Int
    public var spatialScale: Float

    public init(method: Method, outputHeight: Int, outputWidth: Int, spatialScale: Float) {
        self.method = method
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.spatialScale = spatialScale
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        let rois: Dim = inputs.count > 1 ? inputs[1].tensorType?.shape?.first ?? .unknown : .unknown
        let channels: Dim = input.shape.flatMap { $0.count == 4 ? $0[1] : nil } ?? .unknown
        return [.tensor(TensorType(input.dtype, [rois, channels, .value(outputHeight), .value(outputWidth)]))]
    }

    public var description: String {
        let m: String
        switch method {
        case .quantizedMax: m = "method=max"
        case .align(let max, let ratio, let half):
            m = "method=align mode=\(max ? "max" : "avg") sampling_ratio=\(ratio)" + (half ? " half_pixel=1" : "")
        }
        return "\(m) output=[\(outputHeight),\(outputWidth)] spatial_scale=\(spatialScale)"
    }
}
