import KilnIR

/// convolution.int8 (2-D) and matMul.int8 on the GPU: kernels quantize the float input into int8 rows (a
/// convolution's input is transposed to NHWC while it is quantized, then cut into patches with the channels
/// innermost, so every read is coalesced; a 1×1 stride-1 convolution multiplies the NHWC buffer directly),
/// cuBLASLt multiplies them by the int8 weights on the tensor cores (int32 results), and a kernel finishes each
/// output in float: dequantize, bias, residual, activation, and the optional output requantization.
///
/// Zero points: cuBLASLt multiplies signed bytes, so a uint8 input is stored as `q - 128`; with `offset` 128
/// (uint8) or 0 (int8), `Σ w·(q − zp) = Σ w·(q − offset) + (offset − zp)·Σ w`, and the last term is a per-channel
/// constant computed from the weights here. A padded pixel holds `zp − offset`, which adds nothing. The
/// reduction length is padded to a multiple of 16 and the output rows to a multiple of 4 (zeros), as the
/// integer kernels need aligned rows.
///
/// Grouped convolutions and weights that are not constants take direct kernels (one thread per output) instead.
/// Every float step is rounded separately (no fused multiply-add), as the CPU reference computes it, so the two
/// agree exactly up to the activation functions.
enum CUDAQuantizedProducts {
    static let threads = 256
    static let maxBlocks = 132 * 32

    static func lowerConvolution(_ layer: QuantizedConvolutionLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        if layer.input.isFloat8 { return try CUDAFloat8Products.lowerConvolution(layer, info) }
        let chained = layer.channelsLast || layer.writesQuantized || layer.residualQuantization != nil
        if try chained || info.input(0).dtype != .float32 {
            return try CUDAInt8WarpGroupConvolution.lower(layer, info)
        }
        try checkTypes(info, residual: layer.epilogue.residual)
        let (x, w, out, r) = try geometry(layer, info)
        let group = layer.parameters.group
        let hasBias = try checkVectors(info, count: w[0])
        try checkResidual(info, layer.epilogue.residual, out)
        try checkDepth(w[1] * w[2] * w[3])
        let total = out.reduce(1, *)
        if total == 0 { return CUDALowering(steps: []) }
        if group == 1, info.constants.count > 1, let weights = info.constants[1] {
            return try gemmConvolution(layer, info, x: x, w: w, out: out, r: r, weights: weights, hasBias: hasBias)
        }
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        let (p0, p1) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let signed = layer.input.type == .int8
        let product = CUDALaunch(
            source: source, function: "kiln_conv2d_int8_\(signed ? "i8" : "u8")_act\(act)", grid: grid(total),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.scratch(0)), .pointer(.input(1)), .pointer(.input(2)),
                .pointer(hasBias ? .input(3) : .input(2)),
                .pointer(layer.epilogue.residual ? .input(4) : .input(2)), .pointer(.output(0)),
                .dims([x[0], x[1], x[2], x[3], w[0], out[2], out[3]]),
                .dims([w[2], w[3], r.strides[0], r.strides[1], r.padsBegin[0], r.padsBegin[1]] + r.dilations),
                .int32(Int32(group)), .int32(Int32(layer.input.zeroPoint)), .float32(layer.input.scale),
                .int32(hasBias ? 1 : 0), .int32(layer.epilogue.residual ? 1 : 0), .float32(p0), .float32(p1),
            ] + requantization(layer.output))
        return CUDALowering(
            steps: [.launch(quantize(layer.input, count: x.reduce(1, *))), .launch(product)],
            scratchBytes: [x.reduce(1, *)])
    }

    static func lowerMatMul(_ layer: QuantizedMatMulLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        if layer.input.isFloat8 { return try CUDAFloat8Products.lowerMatMul(layer, info) }
        try checkTypes(info, residual: layer.epilogue.residual)
        let (a, b, out, depth) = try matMulGeometry(info)
        let hasBias = try checkVectors(info, count: b[0])
        try checkResidual(info, layer.epilogue.residual, out)
        try checkDepth(depth)
        let total = out.reduce(1, *)
        if total == 0 { return CUDALowering(steps: []) }
        if info.constants.count > 1, let weights = info.constants[1] {
            return try gemmMatMul(layer, info, rows: total / b[0], depth: depth, weights: weights, hasBias: hasBias)
        }
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        let (p0, p1) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let signed = layer.input.type == .int8
        let product = CUDALaunch(
            source: source, function: "kiln_matmul_int8_\(signed ? "i8" : "u8")_act\(act)", grid: grid(total),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.scratch(0)), .pointer(.input(1)), .pointer(.input(2)),
                .pointer(hasBias ? .input(3) : .input(2)),
                .pointer(layer.epilogue.residual ? .input(4) : .input(2)), .pointer(.output(0)),
                .int(total / b[0]), .int(b[0]), .int(depth), .int32(Int32(layer.input.zeroPoint)),
                .float32(layer.input.scale), .int32(hasBias ? 1 : 0),
                .int32(layer.epilogue.residual ? 1 : 0), .float32(p0), .float32(p1),
            ] + requantization(layer.output))
        return CUDALowering(
            steps: [.launch(quantize(layer.input, count: a.reduce(1, *))), .launch(product)],
            scratchBytes: [a.reduce(1, *)])
    }

    /// The shapes of a 2-D convolution.int8's X, W and output and its resolved window, checked against each
    /// other.
    static func geometry(
        _ layer: QuantizedConvolutionLayer, _ info: CUDANodeInfo
    ) throws -> (
        x: [Int], w: [Int], out: [Int], r: ConvolutionParameters.Resolved
    ) {
        let x = try info.inputShape(0)
        let w = try info.inputShape(1)
        let out = try info.outputShape(0)
        guard x.count == 4, w.count == 4 else {
            throw KilnError.unsupported("CUDA convolution.int8 handles 2-D convolutions only, not rank \(x.count)")
        }
        let group = layer.parameters.group
        guard group > 0, x[1] == w[1] * group, w[0] % group == 0 else {
            throw KilnError.shapeMismatch("convolution.int8 with group \(group): X \(x) and W \(w) do not match")
        }
        let r = try layer.parameters.resolve(input: Array(x.dropFirst(2)), kernel: Array(w.dropFirst(2)))
        guard r.kernel == Array(w.dropFirst(2)), [x[0], w[0]] + r.output == out else {
            throw KilnError.shapeMismatch(
                "convolution.int8 output is \([x[0], w[0]] + r.output), the graph says \(out)")
        }
        return (x, w, out, r)
    }

    /// The shapes of a matMul.int8's A, B and output and its depth, checked against each other.
    static func matMulGeometry(_ info: CUDANodeInfo) throws -> (a: [Int], b: [Int], out: [Int], depth: Int) {
        let a = try info.inputShape(0)
        let b = try info.inputShape(1)
        let out = try info.outputShape(0)
        guard b.count == 2, let depth = a.last, b[1] == depth, out == Array(a.dropLast()) + [b[0]] else {
            throw KilnError.shapeMismatch("matMul.int8 needs A [..., K] and B [N, K], got \(a) and \(b)")
        }
        return (a, b, out, depth)
    }

    // MARK: cuBLASLt path

    static func roundUp(_ n: Int, _ multiple: Int) -> Int { (n + multiple - 1) / multiple * multiple }

    /// `rows` x `depth` 8-bit weights (int8, or float8e4m3fn, whose zero byte is +0 too) padded with zeros to
    /// `paddedRows` x `paddedDepth`, and the per-row correction `(offset - zp) * Σ w` of int8 weights as int32.
    /// `channels`: a convolution's weights `[M, C, KH, KW]` are reordered to `[M, KH, KW, C]`, the order of the
    /// NHWC patches.
    static func padded(
        _ weights: Tensor, rows: Int, depth: Int, paddedRows: Int, paddedDepth: Int, correction factor: Int,
        channels: Int? = nil
    ) throws -> (Tensor, Tensor) {
        guard weights.dtype == .int8 || weights.dtype == .float8e4m3fn, weights.count == rows * depth else {
            throw KilnError.shapeMismatch(
                "8-bit weights of \(weights.count) \(weights.dtype.onnxName) values, \(rows) x \(depth) expected")
        }
        var values = weights.scalars(as: UInt8.self)
        if let c = channels, c > 0, depth % c == 0 {
            let window = depth / c
            let source = values
            for r in 0..<rows {
                for channel in 0..<c {
                    for offset in 0..<window {
                        values[r * depth + offset * c + channel] = source[r * depth + channel * window + offset]
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: paddedRows * paddedDepth)
        var sums = [Int32](repeating: 0, count: rows)
        for r in 0..<rows {
            var sum = 0
            for k in 0..<depth {
                out[r * paddedDepth + k] = values[r * depth + k]
                sum += Int(Int8(bitPattern: values[r * depth + k]))
            }
            sums[r] = weights.dtype == .int8 ? Int32(truncatingIfNeeded: sum * factor) : 0
        }
        let packed = try out.withUnsafeBytes {
            try Tensor(dtype: weights.dtype, shape: [paddedRows, paddedDepth], rawBytes: $0)
        }
        return (packed, Tensor(shape: [rows], scalars: sums))
    }

    private static func gemmConvolution(
        _ layer: QuantizedConvolutionLayer, _ info: CUDANodeInfo, x: [Int], w: [Int], out: [Int],
        r: ConvolutionParameters.Resolved, weights: Tensor, hasBias: Bool
    ) throws -> CUDALowering {
        let q = layer.input
        let offset = q.type == .uint8 ? 128 : 0
        let (m, depth, pixels) = (w[0], w[1] * w[2] * w[3], out[2] * out[3])
        let (kp, pp) = (roundUp(depth, 16), roundUp(pixels, 4))
        let (packed, correction) = try padded(
            weights, rows: m, depth: depth, paddedRows: m, paddedDepth: kp, correction: offset - q.zeroPoint,
            channels: x[1])
        let plane = x[2] * x[3]
        let nhwc = CUDALaunch(
            source: source, function: "kiln_int8_nhwc", grid: CUDADim3((plane + 31) / 32, (x[1] + 31) / 32, x[0]),
            block: CUDADim3(32, 8),
            arguments: [
                .pointer(.input(0)), .pointer(.scratch(0)), .int(x[1]), .int(plane), .float32(q.scale),
                .int32(Int32(q.zeroPoint)), .int32(Int32(q.range.lowerBound)), .int32(Int32(q.range.upperBound)),
                .int32(Int32(offset)),
            ])
        var steps: [CUDAStep] = [.launch(nhwc)]
        let (patches, pointwise) = Self.patches(x: x, w: w, out: out, r: r, kp: kp, pp: pp, pad: q.zeroPoint - offset)
        if let patches { steps.append(.launch(patches)) }
        // D [m, pp] per image = W [m, kp] · patches [pp, kp]ᵀ.
        let product = CUDAMatMul(
            a: .constant(0), b: pointwise ? .scratch(0) : .scratch(1), d: .scratch(2), m: m, n: pp, k: kp,
            transposeB: true, batch: x[0], strideA: 0, strideB: x[0] > 1 ? pp * kp : 0,
            strideD: x[0] > 1 ? m * pp : 0, dtype: .int8)
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        let (p0, p1) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let total = out.reduce(1, *)
        let finish = CUDALaunch(
            source: source, function: "kiln_int8_finish_conv_act\(act)", grid: grid(total), block: CUDADim3(threads),
            arguments: [
                .pointer(.scratch(2)), .pointer(.constant(1)), .pointer(.input(2)),
                .pointer(hasBias ? .input(3) : .input(2)), .pointer(layer.epilogue.residual ? .input(4) : .input(2)),
                .pointer(.output(0)), .int(total), .int(m), .int(pixels), .int(pp), .float32(q.scale),
                .int32(hasBias ? 1 : 0), .int32(layer.epilogue.residual ? 1 : 0), .float32(p0), .float32(p1),
            ] + requantization(layer.output))
        return CUDALowering(
            steps: steps + [.matMul(product), .launch(finish)],
            scratchBytes: [x.reduce(1, *), pointwise ? 1 : x[0] * pp * kp, x[0] * m * pp * 4],
            constants: [packed, correction])
    }

    /// The launch that cuts the NHWC bytes in scratch 0 into patch rows `[N][pp][kp]` in scratch 1 (a padded
    /// pixel reads the byte `pad`), or none when the convolution is 1×1, stride 1 and aligned: its patches are
    /// the NHWC rows themselves (`pointwise`).
    static func patches(
        x: [Int], w: [Int], out: [Int], r: ConvolutionParameters.Resolved, kp: Int, pp: Int, pad: Int
    ) -> (launch: CUDALaunch?, pointwise: Bool) {
        let pointwise =
            w[2] == 1 && w[3] == 1 && r.strides == [1, 1] && r.padsBegin == [0, 0] && r.padsEnd == [0, 0]
            && kp == w[1] && pp == out[2] * out[3]
        if pointwise { return (nil, true) }
        // Channels in whole 16-byte runs: one thread copies 16 bytes (and the rows need no padding).
        let vectors = x[1] % 16 == 0
        let units = vectors ? x[0] * pp * w[2] * w[3] * (x[1] / 16) : x[0] * pp * kp
        let launch = CUDALaunch(
            source: source, function: vectors ? "kiln_int8_patches_nhwc16" : "kiln_int8_patches_nhwc",
            grid: grid(units), block: CUDADim3(threads),
            arguments: [
                .pointer(.scratch(0)), .pointer(.scratch(1)), .dims([x[0], x[1], x[2], x[3], out[2], out[3], pp, kp]),
                .dims([w[2], w[3], r.strides[0], r.strides[1], r.padsBegin[0], r.padsBegin[1]] + r.dilations),
                .int32(Int32(pad)),
            ])
        return (launch, false)
    }

    private static func gemmMatMul(
        _ layer: QuantizedMatMulLayer, _ info: CUDANodeInfo, rows: Int, depth: Int, weights: Tensor, hasBias: Bool
    ) throws -> CUDALowering {
        let q = layer.input
        let offset = q.type == .uint8 ? 128 : 0
        let columns = try info.inputShape(1)[0]
        let (kp, np) = (roundUp(depth, 16), roundUp(columns, 4))
        let (packed, correction) = try padded(
            weights, rows: columns, depth: depth, paddedRows: np, paddedDepth: kp, correction: offset - q.zeroPoint)
        let quantize = CUDALaunch(
            source: source, function: "kiln_int8_rows", grid: grid(rows * kp), block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(.scratch(0)), .int(rows), .int(depth), .int(kp), .float32(q.scale),
                .int32(Int32(q.zeroPoint)), .int32(Int32(q.range.lowerBound)), .int32(Int32(q.range.upperBound)),
                .int32(Int32(offset)),
            ])
        // D [rows, np] = A [rows, kp] · W [np, kp]ᵀ.
        let product = CUDAMatMul(
            a: .scratch(0), b: .constant(0), d: .scratch(1), m: rows, n: np, k: kp, transposeB: true, dtype: .int8)
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        let (p0, p1) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let total = rows * columns
        let finish = CUDALaunch(
            source: source, function: "kiln_int8_finish_rows_act\(act)", grid: grid(total), block: CUDADim3(threads),
            arguments: [
                .pointer(.scratch(1)), .pointer(.constant(1)), .pointer(.input(2)),
                .pointer(hasBias ? .input(3) : .input(2)), .pointer(layer.epilogue.residual ? .input(4) : .input(2)),
                .pointer(.output(0)), .int(total), .int(columns), .int(np), .float32(q.scale),
                .int32(hasBias ? 1 : 0), .int32(layer.epilogue.residual ? 1 : 0), .float32(p0), .float32(p1),
            ] + requantization(layer.output))
        return CUDALowering(
            steps: [.launch(quantize), .matMul(product), .launch(finish)],
            scratchBytes: [rows * kp, rows * np * 4], constants: [packed, correction])
    }

    // MARK: Helpers

    /// Enough blocks of `threads` for `total` grid-stride threads, at most `maxBlocks`.
    static func grid(_ total: Int) -> CUDADim3 {
        CUDADim3(max(1, min((total + threads - 1) / threads, maxBlocks)))
    }

    /// `count` floats (of dtype `float`) of input 0 quantized with `q` into `destination`.
    static func quantize(
        _ q: ActivationQuantization, count: Int, from float: DType = .float32,
        into destination: CUDAOperand = .scratch(0)
    ) -> CUDALaunch {
        if q.isFloat8 { return CUDAFloat8Products.quantize(q, count: count, from: float, into: destination) }
        return CUDALaunch(
            source: source, function: kernelName("quantize", q.type, float), grid: grid(count),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(destination), .int(count), .float32(q.scale),
                .int32(Int32(q.zeroPoint)), .int32(Int32(q.range.lowerBound)), .int32(Int32(q.range.upperBound)),
            ])
    }

    /// `count` quantized values of input 0 as floats of `float` in output 0.
    static func dequantize(_ q: ActivationQuantization, count: Int, to float: DType) -> CUDALaunch {
        if q.isFloat8 { return CUDAFloat8Products.dequantize(q, count: count, to: float) }
        return CUDALaunch(
            source: source, function: kernelName("dequantize", q.type, float), grid: grid(count),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(.output(0)), .int(count), .float32(q.scale), .int32(Int32(q.zeroPoint)),
            ])
    }

    /// `kiln_quantize_i8`, `kiln_dequantize_u8_f16`, ...: `operation` between bytes of `quantized` (int8 or
    /// uint8) and floats of `float` (float32 unnamed).
    static func kernelName(_ operation: String, _ quantized: DType, _ float: DType) -> String {
        let suffix = float == .float32 ? "" : "_\(float)"
        return "kiln_\(operation)_\(quantized == .int8 ? "i8" : "u8")\(suffix)"
    }

    private static func requantization(_ q: ActivationQuantization?) -> [CUDAArgument] {
        guard let q else { return [.int32(0), .float32(1), .int32(0), .int32(0), .int32(0)] }
        return [
            .int32(1), .float32(q.scale), .int32(Int32(q.zeroPoint)), .int32(Int32(q.range.lowerBound)),
            .int32(Int32(q.range.upperBound)),
        ]
    }

    /// Float32 input, scales, bias and residual around `weights` (int8, or float8e4m3fn).
    static func checkTypes(_ info: CUDANodeInfo, residual: Bool, weights: DType = .int8) throws {
        let expected: [(Int, DType)] =
            [(0, .float32), (1, weights), (2, .float32)] + (residual ? [(4, .float32)] : [])
        for (index, dtype) in expected where try info.input(index).dtype != dtype {
            throw KilnError.invalidArgument("input \(index) of \(info.node.kind) must be \(dtype.onnxName)")
        }
        if info.hasInput(3), try info.input(3).dtype != .float32 {
            throw KilnError.invalidArgument("the bias of \(info.node.kind) must be float32")
        }
    }

    /// Checks the weight scales and the bias; returns whether there is a bias (an empty one is none, as on the
    /// CPU).
    static func checkVectors(_ info: CUDANodeInfo, count: Int) throws -> Bool {
        var hasBias = false
        for index in [2, 3] where info.hasInput(index) {
            let n = try info.inputShape(index).reduce(1, *)
            if index == 3, n == 0 { continue }
            guard n == count else {
                throw KilnError.shapeMismatch("input \(index) of \(info.node.kind) has \(n) values, \(count) expected")
            }
            hasBias = index == 3
        }
        return hasBias
    }

    static func checkResidual(_ info: CUDANodeInfo, _ residual: Bool, _ out: [Int]) throws {
        guard residual else { return }
        let shape = try info.inputShape(4)
        guard shape == out else {
            throw KilnError.shapeMismatch("the residual of \(info.node.kind) is \(shape), the output \(out)")
        }
    }

    /// The int32 sum holds at most this many products of |q - zp| <= 255 and |w| <= 128 (the CPU's bound too).
    static let maximumDepth = 65_793

    private static func checkDepth(_ depth: Int) throws {
        guard depth <= maximumDepth else {
            throw KilnError.unsupported("an int8 product of \(depth) terms; int32 accumulation holds \(maximumDepth)")
        }
    }
}
