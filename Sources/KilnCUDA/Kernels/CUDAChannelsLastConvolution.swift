import KilnIR

/// Convolutions stored channels-last (`ConvolutionLayer.channelsLast`: X `[N, H, W, C]`, W `[M, kh, kw, C/g]`,
/// Y `[N, OH, OW, M]`), the layout cuDNN's tensor-core kernels read without reformatting. A 1×1 convolution is
/// one product `Y[NHW, M] = X[NHW, C] · Wᵀ` (the bias, residual and ReLU in cuBLASLt's epilogue); a depthwise
/// one is Kiln's kernel (`CUDAChannelsLastDepthwise`); every other one is cuDNN with NHWC descriptors. Shapes
/// arrive channels-first (`x`, `w`, `out` as the ONNX layer has them).
enum CUDAChannelsLastConvolution {
    static let residualIndex = 3

    static func lower(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        info: CUDANodeInfo, dtype: DType
    ) throws -> CUDALowering {
        if let depthwise = try CUDAChannelsLastDepthwise.launch(
            layer, x: x, w: w, out: out, resolved: r, info: info, dtype: dtype)
        {
            return CUDALowering(.launch(depthwise))
        }
        // The libraries read X as it is: an input clamp copies it clamped to scratch first.
        guard let high = layer.inputMax else {
            return try unclamped(layer, x: x, w: w, out: out, resolved: r, info: info, dtype: dtype, source: .input(0))
        }
        let storedX = ChannelsLast.permuted(x, ChannelsLast.fromFirst(rank: 4))
        var lowering = try unclamped(
            layer, x: x, w: w, out: out, resolved: r, info: info, dtype: dtype, source: .scratch(0))
        lowering.steps.insert(.launch(try clampLaunch(above: high, shape: storedX, dtype: dtype)), at: 0)
        lowering.scratchBytes = [storedX.reduce(1, *) * dtype.byteSize]
        return lowering
    }

    /// The product or cuDNN lowering, reading X from `source`.
    static func unclamped(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        info: CUDANodeInfo, dtype: DType, source: CUDAOperand
    ) throws -> CUDALowering {
        let stored = ChannelsLast.permuted(out, ChannelsLast.fromFirst(rank: 4))
        if let product = try pointwiseAsMatMul(
            layer, x: x, w: w, resolved: r, stored: stored, info: info, dtype: dtype, source: source)
        {
            return product
        }
        let activation = layer.epilogue.activation
        let step = CUDAConvolution(
            x: source, w: .input(1), bias: info.hasInput(2) ? .input(2) : nil,
            residual: layer.epilogue.residual ? .input(residualIndex) : nil, y: .output(0), inputShape: x,
            weightShape: w, outputShape: out, pads: r.padsBegin, strides: r.strides, dilations: r.dilations,
            groups: layer.parameters.group, activation: nil, dtype: dtype, channelsLast: true)
        return try CUDAConvolutionLowering.cuDNN(step, activation: activation, shape: stored, dtype: dtype)
    }

    /// A 1×1 convolution (stride 1, no padding, one group) as one product over every pixel of the batch. Nil
    /// for any other convolution.
    static func pointwiseAsMatMul(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], resolved r: ConvolutionParameters.Resolved, stored: [Int],
        info: CUDANodeInfo, dtype: DType, source: CUDAOperand = .input(0)
    ) throws -> CUDALowering? {
        guard layer.parameters.group == 1, r.kernel.allSatisfy({ $0 == 1 }), r.strides.allSatisfy({ $0 == 1 }),
            r.padsBegin.allSatisfy({ $0 == 0 })
        else { return nil }
        let pixels = x[0] * x[2] * x[3]
        guard pixels > 0, x[1] > 0, w[0] > 0 else { return nil }
        let activation = layer.epilogue.activation
        // cuBLASLt's epilogues: ReLU and tanh-GELU, with or without the bias; any other activation follows.
        let inLibrary = activation == nil || activation == .relu || activation == .gelu(tanh: true)
        var step = CUDAMatMul(
            a: source, b: .input(1), bias: info.hasInput(2) ? .input(2) : nil, d: .output(0), m: pixels,
            n: w[0], k: x[1], transposeB: true, activation: inLibrary ? activation : nil, dtype: dtype)
        if layer.epilogue.residual {
            step.c = .input(residualIndex)
            step.beta = 1
        }
        guard !inLibrary,
            let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                activation: activation, bias: nil, shape: stored, dtype: dtype)
        else { return CUDALowering(.matMul(step)) }
        return CUDALowering(.matMul(step), .launch(launch))
    }

    /// `scratch(0) = min(input(0), high)` over `shape` as one generated pointwise kernel (NaN stays NaN).
    static func clampLaunch(above high: Float, shape: [Int], dtype: DType) throws -> CUDALaunch {
        let clip = FusedPointwiseLayer(steps: [
            .init(layer: ClipLayer(min: nil, max: Double(high)), operands: [.input(0)])
        ])
        let (function, parameters) = try CUDAElementwiseFused.compose(clip, inputs: [CUDAPrelude.computeType(dtype)])
        let stored = function.storing(inputs: [dtype], output: dtype)
        let plan = try PointwiseKernel.plan(stored, inputShapes: [shape], output: shape)
        guard
            let launch = try PointwiseKernel.launch(
                stored, plan: plan, inputs: [.input(0)], output: .scratch(0), parameters: parameters)
        else { throw KilnError.runtime("an input clamp over \(shape) has nothing to compute") }
        return launch
    }
}
