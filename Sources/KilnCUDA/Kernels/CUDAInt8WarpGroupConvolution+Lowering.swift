import KilnIR

/// The chained `convolution.int8` (`Int8Chaining`: int8 NHWC input, residual and output) on the warpgroup
/// kernel, and which convolutions may be chained.
extension CUDAInt8WarpGroupConvolution {
    /// Whether a 2-D convolution (`ConvolutionLayer` or `QuantizedConvolutionLayer`) with channels-first input
    /// `input` and weights `weights` fits the kernel: Hopper with im2col tensor maps, one group, channels and
    /// output channels multiples of 64, a window whose corners a map holds, no activation but ReLU. The batch
    /// may be symbolic; the rest must be known.
    static func takes(_ node: Node, input: TensorType, weights: TensorType, architecture: Int, im2col: Bool) -> Bool {
        guard let xs = input.shape, xs.count == 4, let ws = weights.concreteShape else { return false }
        let rest = xs.dropFirst().compactMap(\.value)
        guard rest.count == 3 else { return false }
        return takes(node, x: [xs[0].value ?? 1] + rest, w: ws, architecture: architecture, im2col: im2col)
    }

    static func takes(_ node: Node, x: [Int]?, w: [Int]?, architecture: Int, im2col: Bool) -> Bool {
        let layer = node.layer
        guard architecture == 90, im2col,
            let (parameters, epilogue) = (layer as? QuantizedConvolutionLayer).map({ ($0.parameters, $0.epilogue) })
                ?? (layer as? ConvolutionLayer).map({ ($0.parameters, $0.epilogue) }),
            parameters.group == 1, epilogue.activation == nil || epilogue.activation == .relu,
            let x, let w, x.count == 4, w.count == 4, x[1] == w[1], w[0] % 64 == 0,
            let r = try? parameters.resolve(input: [x[2], x[3]], kernel: [w[2], w[3]]), r.kernel == [w[2], w[3]]
        else { return false }
        let window = CUDAIm2colWindow(
            images: x[0], height: x[2], width: x[3], kernel: r.kernel, strides: r.strides, padsBegin: r.padsBegin,
            padsEnd: r.padsEnd, dilations: r.dilations)
        guard window.output.allSatisfy({ $0 > 0 }) else { return false }
        if x[1] % 64 != 0 {
            let stem = CUDAInt8StemConvolution.Window(channels: x[1], r)
            if !epilogue.residual, CUDAInt8StemConvolution.takes(stem, outputChannels: w[0]) { return true }
            let depth = patchDepth(w[1] * w[2] * w[3])
            return depth <= maximumPatchDepth && patchTile(channels: x[1], window: window, depth: depth) != nil
        }
        return window.cornersFit && w[1] * w[2] * w[3] <= CUDAQuantizedProducts.maximumDepth
    }

    /// Whether the direct stem kernel takes `node` (a chained int8 convolution whose input and weights,
    /// channels-first, are `input` and `weights`) reading its input channels-first: few channels, no residual.
    static func takesChannelsFirst(_ node: Node, input: TensorType, weights: TensorType) -> Bool {
        guard let layer = node.layer as? QuantizedConvolutionLayer, layer.writesQuantized, !layer.epilogue.residual,
            layer.parameters.group == 1, let xs = input.shape, xs.count == 4, let c = xs[1].value,
            let h = xs[2].value, let w = xs[3].value, let ws = weights.concreteShape, ws.count == 4, ws[1] == c,
            let r = try? layer.parameters.resolve(input: [h, w], kernel: [ws[2], ws[3]])
        else { return false }
        return CUDAInt8StemConvolution.takes(.init(channels: c, r), outputChannels: ws[0])
    }

    /// Convolutions over fewer channels than a tile's 64 (a network's stem) multiply their patches instead: each
    /// output pixel's window written out as a row, zero-padded to a multiple of 64, at most this long.
    static let maximumPatchDepth = 1024

    static func patchDepth(_ depth: Int) -> Int { (depth + 63) / 64 * 64 }

    /// The pixels of one output row a block of the staged patches kernel (`kiln_int8_patches_staged`) writes
    /// and the shared memory it needs: each patch byte's offset (4 bytes each), the input rows those pixels read,
    /// and the pixels' patch rows (`depth` + 16 bytes each). At most 128 pixels, halved until it fits the 48 KiB
    /// a block has without opting in; nil when not even one pixel fits (a very wide dilated window).
    static func patchTile(channels: Int, window: CUDAIm2colWindow, depth: Int) -> (pixels: Int, sharedBytes: Int)? {
        var pixels = min(window.output[1], 128)
        while pixels > 0 {
            let span = (pixels - 1) * window.strides[1] + (window.kernel[1] - 1) * window.dilations[1] + 1
            let input = (window.kernel[0] * span * channels + 15) / 16 * 16
            let bytes = depth * 4 + input + pixels * (depth + 16)
            if bytes <= 48 * 1024 { return (pixels, bytes) }
            pixels /= 2
        }
        return nil
    }

    /// The chained convolution: X int8 `[N, H, W, C]` (`[N, C, H, W]` with `channelsFirstInput`), W int8
    /// `[M, kh, kw, C]`, weight scales and bias constants, an optional int8 residual, Y int8 `[N, Ho, Wo, M]`.
    /// The scales fold into the kernel's `alpha = sx · sw[m] / sy` and `beta = bias[m] / sy`, the residual's
    /// into `sr / sy`. Few channels take the direct stem kernel where it applies, else patches.
    static func lower(_ layer: QuantizedConvolutionLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        guard layer.channelsLast, layer.writesQuantized, let output = layer.output else {
            throw KilnError.unsupported(
                "CUDA runs a convolution.int8 with int8 activations only chained: channels-last, int8 output")
        }
        let given = try info.inputShape(0)
        let w = try info.inputShape(1)
        guard given.count == 4 else {
            throw KilnError.shapeMismatch("chained convolution.int8: X \(given) is not an image batch")
        }
        let x = layer.channelsFirstInput ? [given[0], given[2], given[3], given[1]] : given
        let out = try info.outputShape(0)
        let residual = layer.epilogue.residual ? layer.residualQuantization : nil
        let quantizations = [layer.input, output] + (residual.map { [$0] } ?? [])
        guard quantizations.allSatisfy({ $0.type == .int8 && $0.zeroPoint == 0 }) else {
            throw KilnError.unsupported("chained convolution.int8 needs symmetric int8 quantizations")
        }
        let residualType = layer.epilogue.residual ? try info.input(4).dtype : .int8
        guard try info.input(0).dtype == .int8, try info.input(1).dtype == .int8, info.outputs.first?.dtype == .int8,
            residualType == .int8, !layer.epilogue.residual || residual != nil
        else { throw KilnError.invalidArgument("chained convolution.int8 '\(info.node.name)' needs int8 operands") }
        guard x.count == 4, w.count == 4, x[3] == w[3] else {
            throw KilnError.shapeMismatch("chained convolution.int8: X \(x) and W \(w) do not match")
        }
        let r = try layer.parameters.resolve(input: [x[1], x[2]], kernel: [w[1], w[2]])
        let residualShape = layer.epilogue.residual ? try info.inputShape(4) : out
        guard [x[0]] + r.output + [w[0]] == out, residualShape == out else {
            throw KilnError.shapeMismatch(
                "chained convolution.int8 output is \(out), \([x[0]] + r.output + [w[0]]) expected")
        }
        guard info.constants.count > 2, let scales = info.constants[2], scales.count == w[0] else {
            throw KilnError.unsupported("chained convolution.int8 needs \(w[0]) constant weight scales")
        }
        let bias = info.constants.count > 3 ? info.constants[3] : nil
        if info.hasInput(3), bias == nil || bias?.count != w[0] {
            throw KilnError.unsupported("chained convolution.int8 needs a constant bias of \(w[0]) values")
        }
        let activation = layer.epilogue.activation
        guard activation == nil || activation == .relu else {
            throw KilnError.unsupported(
                "chained convolution.int8 applies ReLU only, not \(activation.map { "\($0)" } ?? "")")
        }
        let sw = try scales.doubleValues()
        let b = try bias?.doubleValues() ?? Array(repeating: 0, count: w[0])
        let sy = Double(output.scale)
        let alpha = sw.map { Float(Double(layer.input.scale) * $0 / sy) }
        let beta = b.map { Float($0 / sy) }
        var window = CUDAIm2colWindow(
            images: x[0], height: x[1], width: x[2], kernel: r.kernel, strides: r.strides, padsBegin: r.padsBegin,
            padsEnd: r.padsEnd, dilations: r.dilations)
        var operands = Operands(
            input: .input(0), weights: .input(1), alpha: .constant(0), beta: .constant(1),
            residual: residual == nil ? nil : .input(4), output: .output(0))
        var steps: [CUDAStep] = []
        var constants = [Tensor(shape: [alpha.count], scalars: alpha), Tensor(shape: [beta.count], scalars: beta)]
        var scratch: [Int] = []
        var channels = x[3]
        let stem = CUDAInt8StemConvolution.Window(channels: channels, r)
        let direct =
            channels % 64 != 0 && residual == nil && CUDAInt8StemConvolution.takes(stem, outputChannels: w[0])
        if layer.channelsFirstInput, !direct {
            throw KilnError.unsupported(
                "chained convolution.int8 '\(info.node.name)' reads X \(given) channels-first, which only the stem "
                    + "kernel does, and it does not take this one")
        }
        if direct, info.constants.count > 1, let weights = info.constants[1] {
            constants.append(try CUDAInt8StemConvolution.fragmentWeights(weights, window: stem, outputChannels: w[0]))
            let variant = CUDAInt8StemConvolution.Variant(
                window: stem, channelsFirst: layer.channelsFirstInput, relu: activation == .relu)
            let launch = CUDAInt8StemConvolution.launch(
                variant, x: .input(0), weights: .constant(2), alpha: .constant(0),
                beta: .constant(1), y: .output(0), images: x[0], height: x[1], width: x[2], output: r.output,
                pads: r.padsBegin, outputChannels: w[0], multiprocessors: info.multiprocessors)
            return CUDALowering(steps: [.launch(launch)], constants: constants)
        }
        if channels % 64 != 0 {
            // The patches as a [pixels, depth] matrix, multiplied as a 1x1 convolution over that many channels.
            let depth = w[1] * w[2] * w[3]
            let padded = patchDepth(depth)
            guard padded <= maximumPatchDepth, info.constants.count > 1, let weights = info.constants[1],
                let tile = patchTile(channels: channels, window: window, depth: padded)
            else {
                throw KilnError.unsupported(
                    "chained convolution.int8 over \(channels) channels needs constant weights, patches of at most "
                        + "\(maximumPatchDepth) values and a pixel's input rows within a block's shared memory")
            }
            let pixels = r.output[0] * r.output[1]
            let (rows, _) = try CUDAQuantizedProducts.padded(
                weights, rows: w[0], depth: depth, paddedRows: w[0], paddedDepth: padded, correction: 0)
            constants.append(rows)
            steps.append(
                .launch(
                    CUDALaunch(
                        source: CUDAQuantizedProducts.source, function: "kiln_int8_patches_staged",
                        grid: CUDADim3(x[0] * r.output[0] * ((r.output[1] + tile.pixels - 1) / tile.pixels)),
                        block: CUDADim3(CUDAQuantizedProducts.threads), sharedBytes: tile.sharedBytes,
                        arguments: [
                            .pointer(.input(0)), .pointer(.scratch(0)),
                            .dims([x[0], x[3], x[1], x[2]] + r.output + [pixels, padded]),
                            .dims(r.kernel + r.strides + r.padsBegin + r.dilations), .int32(0),
                            .int32(Int32(tile.pixels)),
                        ])))
            scratch = [x[0] * pixels * padded]
            window = CUDAIm2colWindow(
                images: x[0], height: r.output[0], width: r.output[1], kernel: [1, 1], strides: [1, 1],
                padsBegin: [0, 0], padsEnd: [0, 0], dilations: [1, 1])
            operands.input = .scratch(0)
            operands.weights = .constant(2)
            channels = padded
        }
        let launches = launches(
            operands, window: window, channels: channels, outputChannels: w[0],
            residualScale: residual.map { Float(Double($0.scale) / sy) } ?? 0, relu: activation == .relu,
            architecture: info.architecture, multiprocessors: info.multiprocessors)
        guard let launch = launches.first else {
            throw KilnError.unsupported(
                "the int8 warpgroup convolution does not take '\(info.node.name)' (sm_\(info.architecture), X \(x), W \(w))"
            )
        }
        let signature =
            "int8 convolution x\(x) w\(w) k\(r.kernel) s\(r.strides) p\(r.padsBegin)\(r.padsEnd) d\(r.dilations) "
            + "residual \(residual != nil) relu \(activation == .relu) sm\(info.architecture)x\(info.multiprocessors)"
        return CUDALowering(
            steps: steps + [.launch(launch)], scratchBytes: scratch, constants: constants,
            alternatives: launches.count > 1
                ? [steps.count: CUDALaunchChoice(signature: signature, launches: launches)] : [:])
    }
}
