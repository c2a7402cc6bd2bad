/// How a convolution chooses its padding: explicit pads, or computed so the output is `ceil(input / stride)`
/// with the odd pixel at the end (`sameUpper`) or the start (`sameLower`), or no padding (`valid`).
public enum ConvolutionAutoPad: String, Sendable, Hashable, Codable {
    case explicit, sameUpper, sameLower, valid
}

/// The geometry shared by the convolution layers. Empty arrays mean the default (kernel shape from the weights,
/// strides and dilations 1, pads 0). `pads` lists every spatial axis's begin padding, then every end padding.
public struct ConvolutionParameters: Sendable, Hashable, CustomStringConvertible, Codable {
    public var kernelShape: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var pads: [Int]
    public var autoPad: ConvolutionAutoPad
    public var group: Int

    public init(
        kernelShape: [Int] = [], strides: [Int] = [], dilations: [Int] = [], pads: [Int] = [],
        autoPad: ConvolutionAutoPad = .explicit, group: Int = 1
    ) {
        self.kernelShape = kernelShape
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.autoPad = autoPad
        self.group = group
    }

    /// Concrete geometry for one input: every array has one entry per spatial axis.
    public struct Resolved: Sendable, Hashable, Codable {
        public var kernel: [Int]
        public var strides: [Int]
        public var dilations: [Int]
        public var padsBegin: [Int]
        public var padsEnd: [Int]
        public var output: [Int]
    }

    private func values(_ list: [Int], _ name: String, rank: Int, default value: Int) throws -> [Int] {
        if list.isEmpty { return Array(repeating: value, count: rank) }
        guard list.count == rank else {
            throw KilnError.shapeMismatch("\(name) has \(list.count) entries for \(rank) spatial axes")
        }
        return list
    }

    /// Geometry of a forward convolution over `input` spatial sizes with the weights' `kernel` sizes.
    public func resolve(input: [Int], kernel weightKernel: [Int]) throws -> Resolved {
        let rank = input.count
        let kernel = kernelShape.isEmpty ? weightKernel : kernelShape
        guard kernel.count == rank else {
            throw KilnError.shapeMismatch("kernel shape \(kernel) does not match \(rank) spatial axes")
        }
        let strides = try values(strides, "strides", rank: rank, default: 1)
        let dilations = try values(dilations, "dilations", rank: rank, default: 1)
        guard strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }) else {
            throw KilnError.invalidArgument("strides, dilations and kernel sizes must be positive")
        }
        var begin = [Int](repeating: 0, count: rank)
        var end = [Int](repeating: 0, count: rank)
        var output = [Int](repeating: 0, count: rank)
        for i in 0..<rank {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            switch autoPad {
            case .explicit:
                let pads = try values(self.pads, "pads", rank: 2 * rank, default: 0)
                begin[i] = pads[i]
                end[i] = pads[i + rank]
            case .valid:
                break
            case .sameUpper, .sameLower:
                let out = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + extent - input[i])
                begin[i] = autoPad == .sameUpper ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            }
            let span = input[i] + begin[i] + end[i] - extent
            guard span >= 0 else {
                throw KilnError.shapeMismatch("kernel extent \(extent) exceeds padded input \(input[i]) on axis \(i)")
            }
            output[i] = span / strides[i] + 1
        }
        return Resolved(
            kernel: kernel, strides: strides, dilations: dilations, padsBegin: begin, padsEnd: end, output: output)
    }

    public var description: String {
        var parts: [String] = []
        if !kernelShape.isEmpty { parts.append("kernel=\(kernelShape)") }
        if !strides.isEmpty { parts.append("strides=\(strides)") }
        if !dilations.isEmpty { parts.append("dilations=\(dilations)") }
        if !pads.isEmpty { parts.append("pads=\(pads)") }
        if autoPad != .explicit { parts.append("autoPad=\(autoPad.rawValue)") }
        if group != 1 { parts.append("group=\(group)") }
        return parts.joined(separator: ",")
    }
}

/// Shared type inference: output `[N, channels, spatial...]` from input X's shape and the geometry.
func convolutionOutputType(
    _ x: TensorType?, dtype: DType? = nil, channels: Dim, spatial: ([Int]) throws -> [Int]
) rethrows -> ValueType? {
    guard let x else { return nil }
    let dtype = dtype ?? x.dtype
    guard let shape = x.shape, shape.count >= 3 else { return .tensor(TensorType(dtype, nil)) }
    let inputSpatial = shape.dropFirst(2).compactMap(\.value)
    let dims: [Dim]
    if inputSpatial.count == shape.count - 2 {
        dims = try spatial(inputSpatial).map { .value($0) }
    } else {
        dims = Array(repeating: .unknown, count: shape.count - 2)
    }
    return .tensor(TensorType(dtype, [shape[0], channels] + dims))
}

extension ConvolutionParameters {
    /// The output type of a forward convolution of input 0 by the weights in input 1 (shared by the layers that
    /// convolve forward: plain, deformable, int8).
    func forwardOutputType(_ inputs: [LayerInput]) throws -> ValueType? {
        let w = weightGeometry(inputs.count > 1 ? inputs[1].tensorType : nil)
        guard let kernel = w.kernel ?? (kernelShape.isEmpty ? nil : kernelShape) else {
            return inputs.first?.tensorType.map { .tensor(TensorType($0.dtype, nil)) }
        }
        return try convolutionOutputType(inputs.first?.tensorType, channels: w.channels) {
            try resolve(input: $0, kernel: kernel).output
        }
    }
}

/// The kernel sizes and output channel count from a weight type `[C_out, C_in/group, k...]`.
func weightGeometry(_ w: TensorType?) -> (channels: Dim, kernel: [Int]?) {
    guard let shape = w?.shape, shape.count >= 3 else { return (.unknown, nil) }
    let kernel = shape.dropFirst(2).compactMap(\.value)
    return (shape[0], kernel.count == shape.count - 2 ? kernel : nil)
}

/// A forward N-D convolution (ONNX Conv): inputs X `[N, C, spatial...]`, W `[M, C/group, k...]`, optional
/// bias B `[M]`, and (with `epilogue.residual`) a residual R of the output's shape added after the bias. With
/// `channelsLast` (set by the ChannelsLast pass) X, R and the output are `[N, spatial..., C]` and W is
/// `[M, k..., C/group]`. With `inputMax` every element of X above it counts as it (padding stays zero): the
/// upper half of a ReLU6 moved here from the layer that produced X, whose epilogue keeps only the ReLU.
public struct ConvolutionLayer: Layer {
    public static let kind = LayerKind("convolution")
    public var parameters: ConvolutionParameters
    /// Residual add and activation fused in by the optimizer.
    public var epilogue: Epilogue
    /// Activations and weights stored channels-last (`ChannelsLast`).
    public var channelsLast: Bool
    /// X clamped to at most this before the convolution (`ChannelsLastLayout` sets it); nil: no clamp.
    public var inputMax: Float?

    public init(_ parameters: ConvolutionParameters, epilogue: Epilogue = Epilogue(), channelsLast: Bool = false) {
        self.parameters = parameters
        self.epilogue = epilogue
        self.channelsLast = channelsLast
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard channelsLast else { return [try parameters.forwardOutputType(inputs)] }
        return try ChannelsLast.inferTypes(inputs, permuting: [0, 1, 3]) {
            [try parameters.forwardOutputType($0)]
        }
    }

    public var description: String {
        var parts = parameters.description.isEmpty ? [] : [parameters.description]
        if !epilogue.isEmpty { parts.append("epilogue=\(epilogue)") }
        if channelsLast { parts.append("layout=nhwc") }
        if let inputMax { parts.append("inputMax=\(inputMax)") }
        return parts.joined(separator: ",")
    }
}

/// ONNX ConvInteger: a convolution of 8-bit data after subtracting zero points, accumulated in int32. Inputs: X, W,
/// optional x_zero_point (scalar), optional w_zero_point (scalar or one per output channel).
public struct ConvolutionIntegerLayer: Layer {
    public static let kind = LayerKind("convolution.integer")
    public var parameters: ConvolutionParameters

    public init(_ parameters: ConvolutionParameters) { self.parameters = parameters }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let w = weightGeometry(inputs.count > 1 ? inputs[1].tensorType : nil)
        guard let kernel = w.kernel ?? (parameters.kernelShape.isEmpty ? nil : parameters.kernelShape) else {
            return [.tensor(TensorType(.int32, nil))]
        }
        return [
            try convolutionOutputType(inputs.first?.tensorType, dtype: .int32, channels: w.channels) {
                try parameters.resolve(input: $0, kernel: kernel).output
            }
        ]
    }

    public var description: String { parameters.description }
}
