import KilnIR

/// convolution.int8 (2-D) and matMul.int8 with float8e4m3fn operands (explicitly quantized FP8 models) on the
/// GPU, laid out as the int8 path lays them out: a kernel rounds the float input to E4M3 bytes (a convolution's
/// transposed to NHWC on the way and cut into patches by the int8 byte kernels, padding reading +0), cuBLASLt
/// multiplies them by the E4M3 weights on the FP8 tensor cores with float32 sums, and a kernel finishes each
/// output: scale, bias, residual, activation and the optional output round trip through E4M3. Grouped
/// convolutions and weights that are not constants take direct kernels. Needs compute capability 8.9 (Ada,
/// Hopper) or later; older devices are refused with that reason.
enum CUDAFloat8Products {
    static let threads = CUDAQuantizedProducts.threads

    static func lowerConvolution(_ layer: QuantizedConvolutionLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        try checkDevice(info)
        // The layer reads and writes floats (its type inference says so); the layout is the device's choice.
        guard !layer.channelsLast else { throw KilnError.unsupported("CUDA float8 convolutions are channels-first") }
        try CUDAQuantizedProducts.checkTypes(info, residual: layer.epilogue.residual, weights: .float8e4m3fn)
        let (x, w, out, r) = try CUDAQuantizedProducts.geometry(layer, info)
        let group = layer.parameters.group
        let hasBias = try CUDAQuantizedProducts.checkVectors(info, count: w[0])
        try CUDAQuantizedProducts.checkResidual(info, layer.epilogue.residual, out)
        let total = out.reduce(1, *)
        if total == 0 { return CUDALowering(steps: []) }
        let tail = Tail(layer.epilogue, hasBias: hasBias, output: layer.output, scale: layer.input.scale)
        if group == 1, info.constants.count > 1, let weights = info.constants[1] {
            return try gemmConvolution(layer.input, tail, x: x, w: w, out: out, r: r, weights: weights)
        }
        let product = CUDALaunch(
            source: source, function: "kiln_conv2d_f8_act\(tail.act)", grid: CUDAQuantizedProducts.grid(total),
            block: CUDADim3(threads),
            arguments: [.pointer(.scratch(0)), .pointer(.input(1))] + tail.pointers(weightScales: .input(2)) + [
                .dims([x[0], x[1], x[2], x[3], w[0], out[2], out[3]]),
                .dims([w[2], w[3], r.strides[0], r.strides[1], r.padsBegin[0], r.padsBegin[1]] + r.dilations),
                .int32(Int32(group)),
            ] + tail.scalars)
        return CUDALowering(
            steps: [.launch(quantize(layer.input, count: x.reduce(1, *))), .launch(product)],
            scratchBytes: [x.reduce(1, *)])
    }

    static func lowerMatMul(_ layer: QuantizedMatMulLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        try checkDevice(info)
        try CUDAQuantizedProducts.checkTypes(info, residual: layer.epilogue.residual, weights: .float8e4m3fn)
        let (a, b, out, depth) = try CUDAQuantizedProducts.matMulGeometry(info)
        let hasBias = try CUDAQuantizedProducts.checkVectors(info, count: b[0])
        try CUDAQuantizedProducts.checkResidual(info, layer.epilogue.residual, out)
        let total = out.reduce(1, *)
        if total == 0 { return CUDALowering(steps: []) }
        let tail = Tail(layer.epilogue, hasBias: hasBias, output: layer.output, scale: layer.input.scale)
        let rows = total / b[0]
        if info.constants.count > 1, let weights = info.constants[1] {
            return try gemmMatMul(layer.input, tail, rows: rows, depth: depth, columns: b[0], weights: weights)
        }
        let product = CUDALaunch(
            source: source, function: "kiln_matmul_f8_act\(tail.act)", grid: CUDAQuantizedProducts.grid(total),
            block: CUDADim3(threads),
            arguments: [.pointer(.scratch(0)), .pointer(.input(1))] + tail.pointers(weightScales: .input(2))
                + [.int(rows), .int(b[0]), .int(depth)] + tail.scalars)
        return CUDALowering(
            steps: [.launch(quantize(layer.input, count: a.reduce(1, *))), .launch(product)],
            scratchBytes: [a.reduce(1, *)])
    }

    // MARK: cuBLASLt path

    private static func gemmConvolution(
        _ q: ActivationQuantization, _ tail: Tail, x: [Int], w: [Int], out: [Int], r: ConvolutionParameters.Resolved,
        weights: Tensor
    ) throws -> CUDALowering {
        let (m, depth, pixels) = (w[0], w[1] * w[2] * w[3], out[2] * out[3])
        let (kp, pp) = (CUDAQuantizedProducts.roundUp(depth, 16), CUDAQuantizedProducts.roundUp(pixels, 4))
        let (packed, _) = try CUDAQuantizedProducts.padded(
            weights, rows: m, depth: depth, paddedRows: m, paddedDepth: kp, correction: 0, channels: x[1])
        let plane = x[2] * x[3]
        let nhwc = CUDALaunch(
            source: source, function: "kiln_f8_nhwc", grid: CUDADim3((plane + 31) / 32, (x[1] + 31) / 32, x[0]),
            block: CUDADim3(32, 8),
            arguments: [.pointer(.input(0)), .pointer(.scratch(0)), .int(x[1]), .int(plane), .float32(q.scale)])
        var steps: [CUDAStep] = [.launch(nhwc)]
        let (patches, pointwise) = CUDAQuantizedProducts.patches(x: x, w: w, out: out, r: r, kp: kp, pp: pp, pad: 0)
        if let patches { steps.append(.launch(patches)) }
        // D [m, pp] per image = W [m, kp] · patches [pp, kp]ᵀ, float32.
        let product = CUDAMatMul(
            a: .constant(0), b: pointwise ? .scratch(0) : .scratch(1), d: .scratch(2), m: m, n: pp, k: kp,
            transposeB: true, batch: x[0], strideA: 0, strideB: x[0] > 1 ? pp * kp : 0,
            strideD: x[0] > 1 ? m * pp : 0, dtype: .float8e4m3fn)
        let total = out.reduce(1, *)
        let finish = CUDALaunch(
            source: source, function: "kiln_f8_finish_conv_act\(tail.act)", grid: CUDAQuantizedProducts.grid(total),
            block: CUDADim3(threads),
            arguments: [.pointer(.scratch(2))] + tail.pointers(weightScales: .input(2))
                + [.int(total), .int(m), .int(pixels), .int(pp)] + tail.scalars)
        return CUDALowering(
            steps: steps + [.matMul(product), .launch(finish)],
            scratchBytes: [x.reduce(1, *), pointwise ? 1 : x[0] * pp * kp, x[0] * m * pp * 4], constants: [packed])
    }

    private static func gemmMatMul(
        _ q: ActivationQuantization, _ tail: Tail, rows: Int, depth: Int, columns: Int, weights: Tensor
    ) throws -> CUDALowering {
        let (kp, np) = (CUDAQuantizedProducts.roundUp(depth, 16), CUDAQuantizedProducts.roundUp(columns, 4))
        let (packed, _) = try CUDAQuantizedProducts.padded(
            weights, rows: columns, depth: depth, paddedRows: np, paddedDepth: kp, correction: 0)
        let quantize = CUDALaunch(
            source: source, function: "kiln_f8_rows", grid: CUDAQuantizedProducts.grid(rows * kp),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(.scratch(0)), .int(rows), .int(depth), .int(kp), .float32(q.scale),
            ])
        // D [rows, np] = A [rows, kp] · W [np, kp]ᵀ, float32.
        let product = CUDAMatMul(
            a: .scratch(0), b: .constant(0), d: .scratch(1), m: rows, n: np, k: kp, transposeB: true,
            dtype: .float8e4m3fn)
        let total = rows * columns
        let finish = CUDALaunch(
            source: source, function: "kiln_f8_finish_rows_act\(tail.act)", grid: CUDAQuantizedProducts.grid(total),
            block: CUDADim3(threads),
            arguments: [.pointer(.scratch(1))] + tail.pointers(weightScales: .input(2))
                + [.int(total), .int(columns), .int(np)] + tail.scalars)
        return CUDALowering(
            steps: [.launch(quantize), .matMul(product), .launch(finish)],
            scratchBytes: [rows * kp, rows * np * 4], constants: [packed])
    }

    // MARK: Helpers

    /// What every finish kernel takes after the sums: weight scales, bias, residual and output pointers, then
    /// the input scale, the flags and activation parameters, and the output round trip's scale (0: none).
    struct Tail {
        let act: Int
        let hasBias: Bool
        let residual: Bool
        let scalars: [CUDAArgument]

        init(_ epilogue: Epilogue, hasBias: Bool, output: ActivationQuantization?, scale: Float) {
            act = CUDALinearAlgebraEpilogue.activationIndex(epilogue.activation)
            self.hasBias = hasBias
            residual = epilogue.residual
            let (p0, p1) = CUDALinearAlgebraEpilogue.parameters(epilogue.activation)
            scalars = [
                .float32(scale), .int32(hasBias ? 1 : 0), .int32(epilogue.residual ? 1 : 0), .float32(p0),
                .float32(p1), .float32(output?.scale ?? 0),
            ]
        }

        func pointers(weightScales: CUDAOperand) -> [CUDAArgument] {
            [
                .pointer(weightScales), .pointer(hasBias ? .input(3) : weightScales),
                .pointer(residual ? .input(4) : weightScales), .pointer(.output(0)),
            ]
        }
    }

    /// `count` floats of input 0 rounded to E4M3 bytes (`x / scale`, saturating) into `destination`
    /// (`CUDAQuantizedProducts.quantize` for float8).
    static func quantize(
        _ q: ActivationQuantization, count: Int, from float: DType = .float32,
        into destination: CUDAOperand = .scratch(0)
    ) -> CUDALaunch {
        CUDALaunch(
            source: source, function: kernelName("quantize", float), grid: CUDAQuantizedProducts.grid(count),
            block: CUDADim3(threads),
            arguments: [.pointer(.input(0)), .pointer(destination), .int(count), .float32(q.scale)])
    }

    /// `count` E4M3 bytes of input 0 as floats of `float` in output 0.
    static func dequantize(_ q: ActivationQuantization, count: Int, to float: DType) -> CUDALaunch {
        CUDALaunch(
            source: source, function: kernelName("dequantize", float), grid: CUDAQuantizedProducts.grid(count),
            block: CUDADim3(threads),
            arguments: [.pointer(.input(0)), .pointer(.output(0)), .int(count), .float32(q.scale)])
    }

    /// `kiln_quantize_f8`, `kiln_dequantize_f8_f16`, ...: `operation` between E4M3 bytes and floats of `float`
    /// (float32 unnamed).
    static func kernelName(_ operation: String, _ float: DType) -> String {
        "kiln_\(operation)_f8" + (float == .float32 ? "" : "_\(float)")
    }

    static func checkDevice(_ info: CUDANodeInfo) throws {
        guard info.architecture >= 89 else {
            throw KilnError.unsupported(
                "float8 products need FP8 tensor cores (compute capability 8.9 or later); this device is "
                    + "\(info.architecture / 10).\(info.architecture % 10)")
        }
    }
}
