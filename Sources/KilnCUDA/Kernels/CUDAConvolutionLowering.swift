import KilnIR

/// Convolution -> one cuDNN `.convolution` step (bias, residual and ReLU inside it), plus a generated pointwise
/// pass for any other activation; a 1×1 convolution becomes a cuBLASLt product and a depthwise one Kiln's own
/// kernel (CUDADepthwiseConvolution). Semantics: the CPU reference (ConvolutionKernels.swift): inputs X, W, optional bias
/// B [M], and with `epilogue.residual` a residual (input 3) of the output's shape, added after the bias.
enum CUDAConvolutionLowering {
    static func lower(_ layer: ConvolutionLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let residualIndex = 3
        var used = [0, 1]
        if info.hasInput(2) { used.append(2) }
        if layer.epilogue.residual { used.append(residualIndex) }
        let dtype = try info.input(0).dtype
        guard [.float32, .float16, .bfloat16].contains(dtype) else {
            throw KilnError.unsupported("CUDA convolution handles float32, float16 and bfloat16, not \(dtype.onnxName)")
        }
        for index in used where try info.input(index).dtype != dtype {
            throw KilnError.typeMismatch("convolution input \(index) is not \(dtype.onnxName) like X")
        }
        // Shapes channels-first whatever the storage (`layer.channelsLast`); `stored` is the output as stored.
        let last = layer.channelsLast
        func logical(_ shape: [Int]) -> [Int] {
            last && shape.count >= 3 ? ChannelsLast.permuted(shape, ChannelsLast.toFirst(rank: shape.count)) : shape
        }
        let x = logical(try info.inputShape(0))
        let w = logical(try info.inputShape(1))
        let stored = try info.outputShape(0)
        let out = logical(stored)
        let group = layer.parameters.group
        guard x.count >= 3, w.count == x.count else {
            throw KilnError.shapeMismatch("convolution needs X [N, C, ...] and W of the same rank, got \(x) and \(w)")
        }
        guard group > 0, x[1] == w[1] * group, w[0] % group == 0 else {
            throw KilnError.shapeMismatch("convolution with group \(group): X \(x) and W \(w) do not match")
        }
        let weightKernel = Array(w.dropFirst(2))
        let r = try layer.parameters.resolve(input: Array(x.dropFirst(2)), kernel: weightKernel)
        guard r.kernel == weightKernel else {
            throw KilnError.shapeMismatch("kernel_shape \(r.kernel) does not match the weights \(weightKernel)")
        }
        guard [x[0], w[0]] + r.output == out else {
            throw KilnError.shapeMismatch("convolution output is \([x[0], w[0]] + r.output), the graph says \(out)")
        }
        // cuDNN pads both ends alike: what one end pads beyond the other is copied in first (`explicitPad`).
        let symmetric = zip(r.padsBegin, r.padsEnd).map { min($0, $1) }
        let extra = zip(r.padsBegin, r.padsEnd).map { ($0 - min($0, $1), $1 - min($0, $1)) }
        let padded = extra.contains { $0 != (0, 0) }
        if padded && last {
            throw KilnError.unsupported(
                "CUDA channels-last convolution with asymmetric pads \(r.padsBegin) / \(r.padsEnd)")
        }
        if info.hasInput(2) {
            let bias = try info.inputShape(2)
            guard bias.reduce(1, *) == w[0] else {
                throw KilnError.shapeMismatch("convolution bias \(bias) does not have \(w[0]) elements")
            }
        }
        if layer.epilogue.residual {
            let residual = try info.inputShape(residualIndex)
            guard residual == stored else {
                throw KilnError.shapeMismatch("convolution residual is \(residual), expected \(stored)")
            }
        }
        let total = out.reduce(1, *)
        if total == 0 { return CUDALowering(steps: []) }

        // cuDNN takes 2-D and 3-D convolutions; a 1-D one is a 2-D one of height 1.
        let xp = padded ? Array(x.prefix(2)) + zip(x.dropFirst(2), extra).map { $0 + $1.0 + $1.1 } : x
        var (xs, ws, ys) = (xp, w, out)
        var (pads, strides, dilations) = (symmetric, r.strides, r.dilations)
        switch x.count {
        case 3:
            xs.insert(1, at: 2)
            ws.insert(1, at: 2)
            ys.insert(1, at: 2)
            pads.insert(0, at: 0)
            strides.insert(1, at: 0)
            dilations.insert(1, at: 0)
        case 4, 5:
            break
        default:
            throw KilnError.unsupported("CUDA convolution over \(x.count - 2) spatial axes")
        }

        if last {
            guard x.count == 4 else {
                throw KilnError.unsupported(
                    "CUDA runs channels-last convolutions over 2 spatial axes, not \(x.count - 2)")
            }
            return try CUDAChannelsLastConvolution.lower(
                layer, x: x, w: w, out: out, resolved: r, info: info, dtype: dtype)
        }
        if padded {
            let step = CUDAConvolution(
                x: .scratch(0), w: .input(1), bias: info.hasInput(2) ? .input(2) : nil,
                residual: layer.epilogue.residual ? .input(residualIndex) : nil, y: .output(0), inputShape: xs,
                weightShape: ws, outputShape: ys, pads: pads, strides: strides, dilations: dilations, groups: group,
                activation: nil, dtype: dtype)
            var lowering = try cuDNN(
                step, activation: layer.epilogue.activation, shape: out, dtype: dtype, slot: info.outputSlot)
            lowering.steps.insert(explicitPad(x, begins: extra.map(\.0), into: xp, dtype: dtype), at: 0)
            lowering.scratchBytes = [xp.reduce(1, *) * dtype.byteSize]
            return lowering
        }
        if let depthwise = try CUDADepthwiseConvolution.launch(
            layer, x: x, w: w, out: out, resolved: r, hasBias: info.hasInput(2), dtype: dtype)
        {
            return CUDALowering(.launch(depthwise))
        }
        if let gemm = try pointwiseAsMatMul(
            layer, x: x, w: w, out: out, kernel: r.kernel, strides: r.strides, pads: r.padsBegin, info: info)
        {
            return gemm
        }
        if let gemm = try patchesAsMatMul(layer, x: x, w: w, out: out, resolved: r, info: info) { return gemm }
        let step = CUDAConvolution(
            x: .input(0), w: .input(1), bias: info.hasInput(2) ? .input(2) : nil,
            residual: layer.epilogue.residual ? .input(residualIndex) : nil, y: .output(0), inputShape: xs,
            weightShape: ws, outputShape: ys, pads: pads, strides: strides, dilations: dilations, groups: group,
            activation: nil, dtype: dtype)
        return try cuDNN(step, activation: layer.epilogue.activation, shape: out, dtype: dtype, slot: info.outputSlot)
    }

    /// Copies X `[N, C, ...]` into scratch 0 of shape `padded`, its spatial axes offset by `begins`, zeros
    /// around.
    static func explicitPad(_ x: [Int], begins: [Int], into padded: [Int], dtype: DType) -> CUDAStep {
        let kernel = CUDAShapeKernels.pad(unit: dtype.byteSize, rank: x.count, mode: .constant)
        let count = padded.reduce(1, *)
        return .launch(
            CUDALaunch(
                source: kernel, function: kernel.name, grid: CUDAShapeKernels.grid(count),
                block: CUDADim3(CUDAShapeKernels.blockSize),
                arguments: [
                    .pointer(.scratch(0)), .pointer(.input(0)), .int(count), .dims(padded), .dims(x),
                    .dims([0, 0] + begins), .dims(Broadcast.strides(x)), .int64(0),
                ]))
    }

    /// The cuDNN `step` finishing with `activation`: cuDNN fuses a lone ReLU; any other activation follows as one
    /// in-place pointwise pass over the stored output `shape`. Without that pass or a residual, the output is
    /// written into `slot` when there is one.
    static func cuDNN(
        _ step: CUDAConvolution, activation: EpilogueActivation?, shape: [Int], dtype: DType,
        slot: CUDAOutputSlot? = nil
    ) throws -> CUDALowering {
        var step = step
        step.activation = activation == .relu ? .relu : nil
        guard let activation, activation != .relu,
            let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                activation: activation, bias: nil, shape: shape, dtype: dtype)
        else {
            guard let slot, step.residual == nil, shape.count == step.outputShape.count,
                let strides = slot.strides(of: shape)
            else { return CUDALowering(.convolution(step)) }
            // The slot's strides are in the stored order; cuDNN takes them in the channels-first one.
            step.outputStrides =
                step.channelsLast ? ChannelsLast.permuted(strides, ChannelsLast.toFirst(rank: strides.count)) : strides
            var lowering = CUDALowering(.convolution(step))
            lowering.writesSlot = true
            return lowering
        }
        return CUDALowering(.convolution(step), .launch(launch))
    }

    /// A 1×1 convolution (stride 1, no padding, one group) is, per image, the product `Y[n] (M×P) = W (M×C) ·
    /// X[n] (C×P)` over the P spatial positions: one strided-batched cuBLASLt matMul, which runs these
    /// convolutions faster than cuDNN does in NCHW. The residual is cuBLASLt's C; the per-channel bias and any
    /// activation but a lone ReLU follow in one epilogue pass. Nil when the convolution is not 1×1, or when
    /// cuDNN's fused epilogue is expected to be faster (below).
    static func pointwiseAsMatMul(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], kernel: [Int], strides: [Int], pads: [Int],
        info: CUDANodeInfo
    ) throws -> CUDALowering? {
        guard layer.parameters.group == 1, kernel.allSatisfy({ $0 == 1 }), strides.allSatisfy({ $0 == 1 }),
            pads.allSatisfy({ $0 == 0 })
        else { return nil }
        let (n, c, m) = (x[0], x[1], w[0])
        let p = x.dropFirst(2).reduce(1, *)
        guard n > 0, c > 0, m > 0, p > 0 else { return nil }
        // cuDNN's fused bias + ReLU (+ residual) writes a large output once, where the product needs a second
        // pass for the bias: measured on an H200, ResNet-50 at batch 64 is faster on cuDNN for those layers and
        // at batch 1 faster as products. Until the builder times both per layer, outputs of 16 MiB or more with
        // a bias and ReLU stay on cuDNN.
        let dtype = try info.input(0).dtype
        if info.hasInput(2), layer.epilogue.activation == .relu, n * m * p * 4 >= 16 << 20 { return nil }
        var step = CUDAMatMul(
            a: .input(1), b: .input(0), d: .output(0), m: m, n: p, k: c, transposeA: false, transposeB: false,
            batch: n, strideA: 0, strideB: n == 1 ? 0 : c * p, strideD: n == 1 ? 0 : m * p, alpha: 1, dtype: dtype)
        if layer.epilogue.residual {
            step.c = .input(3)
            step.beta = 1
            step.strideC = step.strideD
        }
        return CUDALowering(steps: try finishProduct(step, layer, info, out: out, spatial: p))
    }

    /// The product of a convolution lowered to a matMul, and its epilogue: a lone ReLU in cuBLASLt; a bias
    /// (per output channel, `spatial` outputs each per image) and any other activation in one pointwise pass.
    static func finishProduct(
        _ product: CUDAMatMul, _ layer: ConvolutionLayer, _ info: CUDANodeInfo, out: [Int], spatial: Int
    ) throws -> [CUDAStep] {
        var step = product
        let activation = layer.epilogue.activation
        guard info.hasInput(2) || (activation != nil && activation != .relu) else {
            step.activation = activation
            return [.matMul(step)]
        }
        // The per-channel bias ([M, 1, ...] against the output [N, M, ...]) and the activation in one generated
        // pointwise pass.
        let bias = info.hasInput(2) ? (CUDAOperand.input(2), [step.m] + Array(repeating: 1, count: out.count - 2)) : nil
        guard
            let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                activation: activation, bias: bias, shape: out, dtype: step.dtype)
        else { return [.matMul(step)] }
        return [.matMul(step), .launch(launch)]
    }

    /// A convolution whose windows tile the input without overlap or padding (kernel = stride, as a vision
    /// transformer's patch embedding): the patches are copied once into rows `[N, OH·OW, C·kh·kw]`, then
    /// `Y[n] = W · patches[n]ᵀ` is one strided-batched cuBLASLt product, with the bias and activation in one
    /// epilogue pass. Nil for any other convolution.
    static func patchesAsMatMul(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        info: CUDANodeInfo
    ) throws -> CUDALowering? {
        guard x.count == 4, layer.parameters.group == 1, r.kernel == r.strides, r.kernel.reduce(1, *) > 1,
            r.padsBegin.allSatisfy({ $0 == 0 }), r.padsEnd.allSatisfy({ $0 == 0 }),
            r.dilations.allSatisfy({ $0 == 1 }), !layer.epilogue.residual
        else { return nil }
        let (n, c, h, wd) = (x[0], x[1], x[2], x[3])
        let (kh, kw) = (r.kernel[0], r.kernel[1])
        let (oh, ow) = (out[2], out[3])
        let (m, k, p) = (w[0], c * kh * kw, oh * ow)
        guard n > 0, m > 0, p > 0, oh * kh <= h, ow * kw <= wd else { return nil }
        // patches[n, oh, ow, c, i, j] = x[n, c, oh·kh + i, ow·kw + j]
        let dtype = try info.input(0).dtype
        let gather = try CUDAStridedCopy.steps(
            source: .input(0), destination: .scratch(0), shape: [n, oh, ow, c, kh, kw],
            strides: [c * h * wd, kh * wd, kw, h * wd, wd, 1], offset: 0, elementSize: dtype.byteSize)
        let step = CUDAMatMul(
            a: .input(1), b: .scratch(0), d: .output(0), m: m, n: p, k: k, transposeA: false, transposeB: true,
            batch: n, strideA: 0, strideB: n == 1 ? 0 : p * k, strideD: n == 1 ? 0 : m * p, alpha: 1, dtype: dtype)
        return CUDALowering(
            steps: gather + (try finishProduct(step, layer, info, out: out, spatial: p)),
            scratchBytes: [n * p * k * dtype.byteSize])
    }
}
