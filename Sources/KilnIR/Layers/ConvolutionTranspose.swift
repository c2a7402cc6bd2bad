/// A transposed N-D convolution (ONNX ConvTranspose): inputs X `[N, C, spatial...]`, W `[C, M/group, k...]`,
/// optional bias B `[M]`. `outputShape` (spatial sizes) overrides the pads, as ONNX specifies.
public struct DeconvolutionLayer: Layer {
    public static let kind = LayerKind("deconvolution")
    public var parameters: ConvolutionParameters
    public var outputPadding: [Int]
    public var outputShape: [Int]

    public init(_ parameters: ConvolutionParameters, outputPadding: [Int] = [], outputShape: [Int] = []) {
        self.parameters = parameters
        self.outputPadding = outputPadding
        self.outputShape = outputShape
    }

    /// Concrete geometry for one input; `output` is the spatial output size.
    public func resolve(input: [Int], kernel weightKernel: [Int]) throws -> ConvolutionParameters.Resolved {
        let rank = input.count
        let p = parameters
        let kernel = p.kernelShape.isEmpty ? weightKernel : p.kernelShape
        func list(_ l: [Int], _ name: String, _ n: Int, _ d: Int) throws -> [Int] {
            if l.isEmpty { return Array(repeating: d, count: n) }
            guard l.count == n else { throw KilnError.shapeMismatch("\(name) has \(l.count) entries, \(n) expected") }
            return l
        }
        guard kernel.count == rank else {
            throw KilnError.shapeMismatch("kernel shape \(kernel) does not match \(rank) spatial axes")
        }
        let strides = try list(p.strides, "strides", rank, 1)
        let dilations = try list(p.dilations, "dilations", rank, 1)
        let outPad = try list(outputPadding, "output_padding", rank, 0)
        guard strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }) else {
            throw KilnError.invalidArgument("strides, dilations and kernel sizes must be positive")
        }
        var begin = [Int](repeating: 0, count: rank)
        var end = [Int](repeating: 0, count: rank)
        var output = [Int](repeating: 0, count: rank)
        let explicitPads = p.autoPad == .explicit ? try list(p.pads, "pads", 2 * rank, 0) : []
        let shape: [Int]? = outputShape.isEmpty ? nil : Array(outputShape.suffix(rank))
        if let shape, shape.count != rank {
            throw KilnError.shapeMismatch("output_shape \(outputShape) does not match \(rank) spatial axes")
        }
        for i in 0..<rank {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            let full = strides[i] * (input[i] - 1) + outPad[i] + extent
            if let shape {
                // Floor division, as the ONNX reference computes it: a negative total pads the end.
                let total = full - shape[i]
                let half = total >= 0 ? total / 2 : -((-total + 1) / 2)
                begin[i] = p.autoPad == .sameUpper ? half : total - half
                end[i] = total - begin[i]
            } else if p.autoPad == .sameUpper || p.autoPad == .sameLower {
                let total = full - input[i] * strides[i]
                begin[i] = p.autoPad == .sameUpper ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            } else if p.autoPad == .explicit {
                begin[i] = explicitPads[i]
                end[i] = explicitPads[i + rank]
            }
            output[i] = full - begin[i] - end[i]
            guard output[i] >= 0 else { throw KilnError.shapeMismatch("negative deconvolution output on axis \(i)") }
        }
        return .init(
            kernel: kernel, strides: strides, dilations: dilations, padsBegin: begin, padsEnd: end, output: output)
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let wShape = inputs.count > 1 ? inputs[1].tensorType?.shape : nil
        var channels: Dim = .unknown
        var kernel: [Int]? = parameters.kernelShape.isEmpty ? nil : parameters.kernelShape
        if let wShape, wShape.count >= 3 {
            if let c = wShape[1].value { channels = .value(c * parameters.group) }
            let k = wShape.dropFirst(2).compactMap(\.value)
            if kernel == nil, k.count == wShape.count - 2 { kernel = k }
        }
        guard let kernel else { return [inputs.first?.tensorType.map { .tensor(TensorType($0.dtype, nil)) }] }
        return [
            try convolutionOutputType(inputs.first?.tensorType, channels: channels) {
                try resolve(input: $0, kernel: kernel).output
            }
        ]
    }

    public var description: String {
        var parts = [parameters.description]
        if !outputPadding.isEmpty { parts.append("outputPadding=\(outputPadding)") }
        if !outputShape.isEmpty { parts.append("outputShape=\(outputShape)") }
        return parts.filter { !$0.isEmpty }.joined(separator: ",")
    }
}

/// ONNX DeformConv (2-D): a convolution whose sampling points move by learned offsets, bilinearly
/// interpolated. Inputs: X, W, offset `[N, offsetGroup*2*kh*kw, oh, ow]`, optional B, optional mask.
public struct DeformableConvolutionLayer: Layer {
    public static let kind = LayerKind("convolution.deformable")
    public var parameters: ConvolutionParameters
    public var offsetGroup: Int

    public init(_ parameters: ConvolutionParameters, offsetGroup: Int = 1) {
        self.parameters = parameters
        self.offsetGroup = offsetGroup
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [try parameters.forwardOutputType(inputs)]
    }

    public var description: String {
        [parameters.description, offsetGroup != 1 ? "offsetGroup=\(offsetGroup)" : ""]
            .filter { !$0.isEmpty }.joined(separator: ",")
    }
}

/// ONNX Col2Im: sums sliding blocks `[N, C*prod(block), L]` back into an image `[N, C, image...]`. Inputs: the
/// columns, image_shape, block_shape (both 1-D int64).
public struct Col2ImLayer: Layer {
    public static let kind = LayerKind("col2im")
    public var strides: [Int]
    public var dilations: [Int]
    public var pads: [Int]

    public init(strides: [Int] = [], dilations: [Int] = [], pads: [Int] = []) {
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        guard let shape = x.shape, shape.count == 3, inputs.count > 2,
            let image = inputs[1].constant, let block = inputs[2].constant
        else { return [.tensor(TensorType(x.dtype, nil))] }
        let blockSize = try block.intValues().reduce(1, *)
        let channels: Dim = shape[1].value.map { blockSize > 0 ? .value($0 / blockSize) : .unknown } ?? .unknown
        return [.tensor(TensorType(x.dtype, [shape[0], channels] + (try image.intValues()).map { .value($0) }))]
    }

    public var description: String {
        var parts: [String] = []
        if !strides.isEmpty { parts.append("strides=\(strides)") }
        if !dilations.isEmpty { parts.append("dilations=\(dilations)") }
        if !pads.isEmpty { parts.append("pads=\(pads)") }
        return parts.joined(separator: ",")
    }
}
