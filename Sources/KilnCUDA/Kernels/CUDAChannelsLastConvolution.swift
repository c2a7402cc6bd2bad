import KilnIR

/// Convolutions stored channels-last (`ConvolutionLayer.channelsLast`: X `[N, H, W, C]`, W `[M, kh, kw, C/g]`,
/// Y `[N, OH, OW, M]`), the layout cuDNN's tensor-core kernels read without reformatting. A 1×1 convolution is
/// one product `Y[NHW, M] = X[NHW, C] · Wᵀ` (the bias, residual and ReLU in cuBLASLt's epilogue; with a
/// stride, the pixels it reads are copied together first); a depthwise
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
        let clamped = storedX.reduce(1, *) * dtype.byteSize
        if lowering.scratchBytes.isEmpty {
            lowering.scratchBytes = [clamped]
        } else {
            lowering.scratchBytes[0] = clamped
        }
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
        return try CUDAConvolutionLowering.cuDNN(
            step, activation: activation, shape: stored, dtype: dtype, slot: info.outputSlot)
    }

    /// A 1×1 convolution (no padding, one group) as one product over every output pixel of the batch. With a
    /// stride (ResNet's downsampling shortcuts) the pixels it reads are first copied into a scratch buffer
    /// `[N, OH, OW, C]` (the next free one after `source`): cuDNN's NHWC algorithms took twice as long in
    /// float32 as that copy and the product. Nil for any other convolution.
    static func pointwiseAsMatMul(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], resolved r: ConvolutionParameters.Resolved, stored: [Int],
        info: CUDANodeInfo, dtype: DType, source: CUDAOperand = .input(0)
    ) throws -> CUDALowering? {
        guard x.count == 4, layer.parameters.group == 1, r.kernel.allSatisfy({ $0 == 1 }),
            r.padsBegin.allSatisfy({ $0 == 0 }), r.padsEnd.allSatisfy({ $0 == 0 })
        else { return nil }
        let (oh, ow) = (stored[1], stored[2])
        let pixels = x[0] * oh * ow
        guard pixels > 0, x[1] > 0, w[0] > 0 else { return nil }
        var lowering = CUDALowering(steps: [])
        var a = source
        if r.strides.contains(where: { $0 != 1 }) {
            let (h, wd, c) = (x[2], x[3], x[1])
            let slot: Int
            if case .scratch = source { slot = 1 } else { slot = 0 }
            a = .scratch(slot)
            lowering.scratchBytes = Array(repeating: 0, count: slot) + [pixels * c * dtype.byteSize]
            lowering.steps = try CUDAStridedCopy.steps(
                source: source, destination: a, shape: [x[0], oh, ow, c],
                strides: [h * wd * c, r.strides[0] * wd * c, r.strides[1] * c, 1], offset: 0,
                elementSize: dtype.byteSize)
        }
        let activation = layer.epilogue.activation
        // cuBLASLt's epilogues: ReLU and tanh-GELU, with or without the bias; any other activation follows.
        let inLibrary = activation == nil || activation == .relu || activation == .gelu(tanh: true)
        var step = CUDAMatMul(
            a: a, b: .input(1), bias: info.hasInput(2) ? .input(2) : nil, d: .output(0), m: pixels,
            n: w[0], k: x[1], transposeB: true, activation: inLibrary ? activation : nil, dtype: dtype)
        if layer.epilogue.residual {
            step.c = .input(residualIndex)
            step.beta = 1
        } else if inLibrary, let slot = info.outputSlot, slot.rows == pixels, slot.rowElements == w[0] {
            // Written straight into a concat's columns: D's rows the slot's row stride apart.
            step.rowStrideD = slot.rowStride
            lowering.writesSlot = true
        }
        lowering.steps.append(.matMul(step))
        if !inLibrary,
            let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                activation: activation, bias: nil, shape: stored, dtype: dtype)
        {
            lowering.steps.append(.launch(launch))
        }
        return lowering
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
