import CKilnMicroKernels
import Foundation
import KilnIR
import KilnRuntime

/// Kernels for convolution.int8 and matMul.int8: the float input is quantized once per call, products are
/// integer dot products with int32 accumulation, and each output row is dequantized and finished (bias,
/// residual, activation) while it is in cache. float8 layers take `Float8Products`.
enum QuantizedProductKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        LinearAlgebraKernels.statefulKernel(QuantizedConvolutionLayer.self) { layer, environment in
            QuantizedConvolutionKernel(layer, tuner: environment.tuner)
        },
        LinearAlgebraKernels.statefulKernel(QuantizedMatMulLayer.self) { layer, environment in
            QuantizedMatMulKernel(layer, tuner: environment.tuner)
        },
    ]
}

/// Integer arithmetic shared by both kernels.
enum Int8Arithmetic {
    /// `q - zeroPoint` for each of `count` elements, with `q = saturate(roundHalfEven(x / scale) + zeroPoint)`.
    static func quantize(_ x: UnsafePointer<Float>, count: Int, _ q: ActivationQuantization) -> [Int16] {
        let low = Float(q.range.lowerBound - q.zeroPoint)
        let high = Float(q.range.upperBound - q.zeroPoint)
        return (0..<count).map { i in
            let r = (x[i] / q.scale).rounded(.toNearestOrEven)
            // NaN quantizes to 0, as the quantize layer does, which stands for -zeroPoint.
            return r.isNaN ? Int16(-q.zeroPoint) : Int16(min(max(r, low), high))
        }
    }

    /// Int8 weights as the dot products read them (int16), derived once per weight tensor.
    static func widened(_ cache: WeightCache<[Int16]>, _ w: Tensor) -> [Int16] {
        cache.value(for: w) { w.withUnsafeBuffer(as: Int8.self) { $0.map { Int16($0) } } }
    }

    /// `Σ a[k] * b[k]` over `depth` elements in int32 (no overflow: |a| <= 255, |b| <= 128, depth < 2^16 per
    /// 2^31 / (255 * 128) = 65,793 terms; deeper products are checked by the callers).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Int16>, _ b: UnsafePointer<Int16>, _ depth: Int) -> Int32 {
        var sum: Int32 = 0
        for k in 0..<depth { sum &+= Int32(a[k]) &* Int32(b[k]) }
        return sum
    }

    /// Four dot products of `a` with `b0`...`b3` in one pass over `a` (each load of `a` serves four sums).
    @inline(__always)
    static func dot4(
        _ a: UnsafePointer<Int16>, _ b0: UnsafePointer<Int16>, _ b1: UnsafePointer<Int16>,
        _ b2: UnsafePointer<Int16>, _ b3: UnsafePointer<Int16>, _ depth: Int
    ) -> SIMD4<Int32> {
        var s0: Int32 = 0
        var s1: Int32 = 0
        var s2: Int32 = 0
        var s3: Int32 = 0
        for k in 0..<depth {
            let x = Int32(a[k])
            s0 &+= x &* Int32(b0[k])
            s1 &+= x &* Int32(b1[k])
            s2 &+= x &* Int32(b2[k])
            s3 &+= x &* Int32(b3[k])
        }
        return SIMD4(s0, s1, s2, s3)
    }

    /// `dot(a, b + j * depth)` for j in 0..<count, written to `sums`, four at a time (thirty-two products a
    /// step with AVX-512 VNNI, sixteen with AVX2, in C).
    @inline(__always)
    static func dots(
        _ a: UnsafePointer<Int16>, _ b: UnsafePointer<Int16>, count: Int, depth: Int,
        into sums: UnsafeMutablePointer<Int32>
    ) {
        if CPUFeatures.current & KILN_CPU_AVX512_VNNI != 0 {
            kiln_dots_i16_avx512vnni(a, b, count, depth, sums)
            return
        }
        if CPUFeatures.current & KILN_CPU_AVX2_FMA != 0 {
            kiln_dots_i16_avx2(a, b, count, depth, sums)
            return
        }
        var j = 0
        while j + 4 <= count {
            let s = dot4(a, b + j * depth, b + (j + 1) * depth, b + (j + 2) * depth, b + (j + 3) * depth, depth)
            for i in 0..<4 { sums[j + i] = s[i] }
            j += 4
        }
        while j < count {
            sums[j] = dot(a, b + j * depth, depth)
            j += 1
        }
    }

    /// `dots` for the four rows `a`, `a + lda`, `a + 2 lda`, `a + 3 lda`, row i's sums at `sums + i * ldo`: in C
    /// each load of `a` or `b` feeds several products (a row at a time streams all of `b` per row).
    @inline(__always)
    static func dots4(
        _ a: UnsafePointer<Int16>, lda: Int, _ b: UnsafePointer<Int16>, count: Int, depth: Int,
        into sums: UnsafeMutablePointer<Int32>, ldo: Int
    ) {
        if CPUFeatures.current & KILN_CPU_AVX512_VNNI != 0 {
            kiln_dots4_i16_avx512vnni(a, lda, b, count, depth, sums, ldo)
        } else if CPUFeatures.current & KILN_CPU_AVX2_FMA != 0 {
            kiln_dots4_i16_avx2(a, lda, b, count, depth, sums, ldo)
        } else {
            for i in 0..<4 { dots(a + i * lda, b, count: count, depth: depth, into: sums + i * ldo) }
        }
    }

    /// `dots` for each of `rows` rows of `a` (`lda` apart), row i's sums at `sums + i * ldo`, four at a time.
    static func dots(
        rows: Int, _ a: UnsafePointer<Int16>, lda: Int, _ b: UnsafePointer<Int16>, count: Int, depth: Int,
        into sums: UnsafeMutablePointer<Int32>, ldo: Int
    ) {
        var i = 0
        while i + 4 <= rows {
            dots4(a + i * lda, lda: lda, b, count: count, depth: depth, into: sums + i * ldo, ldo: ldo)
            i += 4
        }
        while i < rows {
            dots(a + i * lda, b, count: count, depth: depth, into: sums + i * ldo)
            i += 1
        }
    }

    static let maximumDepth = 65_793

    /// The first element of `buffer`, or of a static zero when it is empty (a plan may hold a product with no
    /// input channels: nothing is read then, but a pointer is still passed).
    static func base(_ buffer: UnsafeBufferPointer<Int16>) -> UnsafePointer<Int16> {
        buffer.baseAddress ?? UnsafePointer(emptyOperand)
    }

    nonisolated(unsafe) private static let emptyOperand: UnsafeMutablePointer<Int16> = {
        let pointer = UnsafeMutablePointer<Int16>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()

    /// The float elements of a tensor the caller keeps alive (a kernel's input), nil when absent.
    static func pointer(to tensor: Tensor?) -> UnsafePointer<Float>? {
        tensor.map { UnsafePointer($0.storage.bytes.assumingMemoryBound(to: Float.self)) }
    }

    /// The float tail of a row of sums (int32, or float32 for float8): dequantize, bias, residual, activation,
    /// requantize.
    struct Finish {
        let activation: EpilogueActivation?
        let output: ActivationQuantization?

        @inline(__always)
        func row(
            _ dst: UnsafeMutablePointer<Float>, count: Int, sum: (Int) -> Float, scale: (Int) -> Float,
            bias: (Int) -> Float, residual: UnsafePointer<Float>?
        ) {
            for j in 0..<count { dst[j] = sum(j) * scale(j) + bias(j) }
            if let residual { for j in 0..<count { dst[j] += residual[j] } }
            if let activation { GemmEpilogue.activate(dst, count: count, activation) }
            if let output { for j in 0..<count { dst[j] = output.roundTrip(dst[j]) } }
        }
    }

    /// The real numbers a quantized tensor stands for, `(q - zeroPoint) * scale` as float32; a float32 tensor
    /// is returned as it is.
    static func dequantized(_ t: Tensor, _ q: ActivationQuantization) throws -> Tensor {
        if t.dtype == .float32 { return t }
        guard t.dtype == q.type else {
            throw KilnError.invalidArgument("a value quantized as \(q) holds \(t.dtype.onnxName)")
        }
        let codes: [Int] =
            q.type == .uint8
            ? t.withUnsafeBuffer(as: UInt8.self) { $0.map(Int.init) }
            : t.withUnsafeBuffer(as: Int8.self) { $0.map(Int.init) }
        return Tensor(shape: t.shape, scalars: codes.map { Float($0 - q.zeroPoint) * q.scale })
    }

    /// A float32 tensor's values quantized with `q` (ONNX QuantizeLinear's rule), in `q`'s type.
    static func quantized(_ t: Tensor, _ q: ActivationQuantization) -> Tensor {
        let codes = t.withUnsafeBuffer(as: Float.self) { v in
            quantize(v.baseAddress ?? UnsafePointer(emptyFloat), count: v.count, q).map { Int($0) + q.zeroPoint }
        }
        return q.type == .uint8
            ? Tensor(shape: t.shape, scalars: codes.map { UInt8($0) })
            : Tensor(shape: t.shape, scalars: codes.map { Int8($0) })
    }

    nonisolated(unsafe) private static let emptyFloat: UnsafeMutablePointer<Float> = {
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()

    static func checkDepth(_ depth: Int, _ layer: String) throws {
        guard depth <= maximumDepth else {
            throw KilnError.unsupported("\(layer) sums \(depth) products; int32 accumulation holds \(maximumDepth)")
        }
    }

    static func floats(_ inputs: [Value?], _ index: Int, count: Int, _ what: String) throws -> [Float]? {
        guard let t = try inputs.optionalTensor(index), t.count > 0 else { return nil }
        guard t.dtype == .float32, t.count == count else {
            throw KilnError.shapeMismatch("\(what) is \(t.dtype.onnxName)\(t.shape), \(count) float32 values expected")
        }
        return t.withUnsafeBuffer(as: Float.self) { Array($0) }
    }
}

final class QuantizedConvolutionKernel: Kernel {
    let layer: QuantizedConvolutionLayer
    let cache = WeightCache<[Int16]>()
    let float8: Float8Products?

    init(_ layer: QuantizedConvolutionLayer, tuner: GemmTuner) {
        self.layer = layer
        float8 = layer.input.isFloat8 ? Float8Products(convolution: layer.parameters, tuner: tuner) : nil
    }

    /// The chained forms (`Int8Chaining`) through the float one: quantized X and residual are dequantized (X
    /// then quantizes back to the same integers, as `input` is its quantization), a quantized output is the
    /// float one's requantized values, and channels-last operands are permuted around the channels-first
    /// kernel. A reference for the GPU kernels, not a fast path.
    func execute(_ inputs: [Value?], _ context: KernelContext) throws -> [Value] {
        guard !layer.channelsLast, !layer.writesQuantized, layer.residualQuantization == nil,
            try inputs.tensor(0).dtype == .float32
        else {
            // `floatOutput` reads neither the layout nor the quantized forms' fields, only the operands.
            var floats = inputs
            floats[0] = .tensor(try Int8Arithmetic.dequantized(try inputs.tensor(0), layer.input))
            if let r = layer.residualQuantization, layer.epilogue.residual {
                floats[4] = .tensor(try Int8Arithmetic.dequantized(try inputs.tensor(4), r))
            }
            let run = { (operands: [Value?]) throws -> [Value] in
                let y = try self.floatOutput(operands, context)
                guard self.layer.writesQuantized, let output = self.layer.output else { return [.tensor(y)] }
                return [.tensor(Int8Arithmetic.quantized(y, output))]
            }
            guard layer.channelsLast else { return try run(floats) }
            return try ChannelsLastKernels.run(
                floats, permuting: layer.channelsLastInputs, threads: context.threads, run)
        }
        return [.tensor(try floatOutput(inputs, context))]
    }

    private func floatOutput(_ inputs: [Value?], _ context: KernelContext) throws -> Tensor {
        try layer.input.validate()
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let g = try ConvolutionGeometry(layer.parameters, x: x.shape, w: w.shape)
        guard let scales = try Int8Arithmetic.floats(inputs, 2, count: g.outChannels, "weight scales") else {
            throw KilnError.invalidArgument("convolution.int8 has no weight scales")
        }
        let bias = try Int8Arithmetic.floats(inputs, 3, count: g.outChannels, "bias")
        let residual = layer.epilogue.residual ? try inputs.tensor(4) : nil
        if let residual, residual.dtype != .float32 || residual.shape != g.outShape {
            throw KilnError.shapeMismatch("convolution.int8 residual is \(residual.shape), \(g.outShape) expected")
        }
        let columnScale = scales.map { $0 * layer.input.scale }
        let finish = Int8Arithmetic.Finish(activation: layer.epilogue.activation, output: layer.output)
        if let float8 {
            let sums = try float8.sums(x, w, layer.input, context)
            return Float8Products.finish(
                sums, rows: g.batch * g.outChannels, count: g.outSize, perColumn: false, scales: columnScale,
                bias: bias, residual: residual, finish, threads: context.threads)
        }
        guard x.dtype == .float32, w.dtype == .int8 else {
            throw KilnError.invalidArgument(
                "convolution.int8 needs float32 X and int8 W, got \(x.dtype) and \(w.dtype)")
        }
        let depth = g.groupInChannels * g.kernelSize
        try Int8Arithmetic.checkDepth(depth, "convolution.int8")
        let weights = Int8Arithmetic.widened(cache, w)
        let xBase = Int8Arithmetic.pointer(to: x)!
        let outSize = g.outSize
        let y = Tensor.build(Float.self, shape: g.outShape) { out in
            guard let o = out.baseAddress, out.count > 0 else { return }
            let residualBase = Int8Arithmetic.pointer(to: residual)
            let shared = UncheckedSendable(o)
            /// One (image, group) plane: its patches, then output channels `rows` of it on `threads` threads.
            func plane(_ unit: Int, threads: Int) {
                let (n, group) = (unit / g.group, unit % g.group)
                // Each plane quantizes its own slice of the input, so that work is spread over the threads too.
                let first = (n * g.inChannels + group * g.groupInChannels) * g.inSize
                let slice = Int8Arithmetic.quantize(xBase + first, count: g.groupInChannels * g.inSize, layer.input)
                let columns = slice.withUnsafeBufferPointer { q in Self.columns(Int8Arithmetic.base(q), g, depth: depth)
                }
                let outFirst = (n * g.outChannels + group * g.groupOutChannels) * outSize
                weights.withUnsafeBufferPointer { wb in
                    columns.withUnsafeBufferPointer { cb in
                        Parallel.forEach(g.groupOutChannels, threads: threads) { rows in
                            // Output channels four at a time, so each patch column loaded feeds four of them.
                            var sums = [Int32](repeating: 0, count: 4 * outSize)
                            for block in stride(from: rows.lowerBound, to: rows.upperBound, by: 4) {
                                let count = min(4, rows.upperBound - block)
                                let first = group * g.groupOutChannels + block
                                sums.withUnsafeMutableBufferPointer { s in
                                    Int8Arithmetic.dots(
                                        rows: count, Int8Arithmetic.base(wb) + first * depth, lda: depth,
                                        Int8Arithmetic.base(cb), count: outSize, depth: depth, into: s.baseAddress!,
                                        ldo: outSize)
                                }
                                for i in 0..<count {
                                    let (row, m) = (block + i, first + i)
                                    let residualRow = residualBase.map { $0 + outFirst + row * outSize }
                                    sums.withUnsafeBufferPointer { s in
                                        finish.row(
                                            shared.value + outFirst + row * outSize, count: outSize,
                                            sum: { Float(s[i * outSize + $0]) }, scale: { _ in columnScale[m] },
                                            bias: { _ in bias?[m] ?? 0 }, residual: residualRow)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // Enough planes: one thread per plane (patches built in parallel too); else threads share a plane.
            let planes = g.batch * g.group
            if planes >= context.threads {
                Parallel.forEach(planes, threads: context.threads) { units in
                    for unit in units { plane(unit, threads: 1) }
                }
            } else {
                for unit in 0..<planes { plane(unit, threads: context.threads) }
            }
        }
        withExtendedLifetime((x, residual)) {}
        return y
    }

    /// The input patches as rows: row `p` (an output position) holds (channel, kernel offset) in the weights'
    /// order; padding reads 0, which is a real 0 after the zero point is subtracted.
    static func columns(_ x: UnsafePointer<Int16>, _ g: ConvolutionGeometry, depth: Int) -> [Int16] {
        let rank = g.inSpatial.count
        let r = g.r
        if rank == 2 { return columns2D(x, g, depth: depth) }
        var result = [Int16](repeating: 0, count: g.outSize * depth)
        var outIndex = [Int](repeating: 0, count: rank)
        var kernelIndex = [Int](repeating: 0, count: rank)
        result.withUnsafeMutableBufferPointer { dst in
            for p in 0..<g.outSize {
                var rest = p
                for axis in stride(from: rank - 1, through: 0, by: -1) {
                    outIndex[axis] = rest % r.output[axis]
                    rest /= r.output[axis]
                }
                for offset in 0..<g.kernelSize {
                    var k = offset
                    var inside = true
                    var position = 0
                    for axis in stride(from: rank - 1, through: 0, by: -1) {
                        kernelIndex[axis] = k % r.kernel[axis]
                        k /= r.kernel[axis]
                    }
                    for axis in 0..<rank {
                        let coordinate =
                            outIndex[axis] * r.strides[axis] - r.padsBegin[axis] + kernelIndex[axis] * r.dilations[axis]
                        if coordinate < 0 || coordinate >= g.inSpatial[axis] { inside = false }
                        position = position * g.inSpatial[axis] + coordinate
                    }
                    guard inside else { continue }
                    for c in 0..<g.groupInChannels {
                        dst[p * depth + c * g.kernelSize + offset] = x[c * g.inSize + position]
                    }
                }
            }
        }
        return result
    }
}

extension QuantizedConvolutionKernel {
    /// `columns` for 2-D windows: the same rows, with the window's coordinates stepped instead of decoded from
    /// flat indices.
    static func columns2D(_ x: UnsafePointer<Int16>, _ g: ConvolutionGeometry, depth: Int) -> [Int16] {
        let r = g.r
        let (h, w) = (g.inSpatial[0], g.inSpatial[1])
        let (kh, kw) = (r.kernel[0], r.kernel[1])
        let (oh, ow) = (r.output[0], r.output[1])
        let (channels, window, plane) = (g.groupInChannels, g.kernelSize, g.inSize)
        var result = [Int16](repeating: 0, count: g.outSize * depth)
        result.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            for y in 0..<oh {
                for xo in 0..<ow {
                    let row = base + (y * ow + xo) * depth
                    for ky in 0..<kh {
                        let iy = y * r.strides[0] - r.padsBegin[0] + ky * r.dilations[0]
                        guard iy >= 0, iy < h else { continue }
                        for kx in 0..<kw {
                            let ix = xo * r.strides[1] - r.padsBegin[1] + kx * r.dilations[1]
                            guard ix >= 0, ix < w else { continue }
                            let offset = ky * kw + kx
                            let position = iy * w + ix
                            for c in 0..<channels { row[c * window + offset] = x[c * plane + position] }
                        }
                    }
                }
            }
        }
        return result
    }
}

final class QuantizedMatMulKernel: Kernel {
    let layer: QuantizedMatMulLayer
    let cache = WeightCache<[Int16]>()
    let float8: Float8Products?

    init(_ layer: QuantizedMatMulLayer, tuner: GemmTuner) {
        self.layer = layer
        float8 = layer.input.isFloat8 ? Float8Products(matMulTuner: tuner) : nil
    }

    func execute(_ inputs: [Value?], _ context: KernelContext) throws -> [Value] {
        try layer.input.validate()
        let a = try inputs.tensor(0)
        let b = try inputs.tensor(1)
        let weightType: DType = float8 == nil ? .int8 : .float8e4m3fn
        guard a.dtype == .float32, b.dtype == weightType, b.shape.count == 2, let depth = a.shape.last,
            b.shape[1] == depth
        else {
            throw KilnError.shapeMismatch(
                "matMul.int8 needs float32 A [..., K] and \(weightType) B [N, K], got \(a.dtype)\(a.shape) and "
                    + "\(b.dtype)\(b.shape)")
        }
        let columns = b.shape[0]
        guard let scales = try Int8Arithmetic.floats(inputs, 2, count: columns, "weight scales") else {
            throw KilnError.invalidArgument("matMul.int8 has no weight scales")
        }
        let bias = try Int8Arithmetic.floats(inputs, 3, count: columns, "bias")
        let outShape = Array(a.shape.dropLast()) + [columns]
        let residual = layer.epilogue.residual ? try inputs.tensor(4) : nil
        if let residual, residual.dtype != .float32 || residual.shape != outShape {
            throw KilnError.shapeMismatch("matMul.int8 residual is \(residual.shape), \(outShape) expected")
        }
        let rows = depth == 0 ? a.shape.dropLast().reduce(1, *) : a.count / depth
        let columnScale = scales.map { $0 * layer.input.scale }
        let finish = Int8Arithmetic.Finish(activation: layer.epilogue.activation, output: layer.output)
        if let float8 {
            let sums = try float8.sums(a, b, layer.input, context)
            return [
                .tensor(
                    Float8Products.finish(
                        sums, rows: rows, count: columns, perColumn: true, scales: columnScale, bias: bias,
                        residual: residual, finish, threads: context.threads))
            ]
        }
        try Int8Arithmetic.checkDepth(depth, "matMul.int8")
        let weights = Int8Arithmetic.widened(cache, b)
        let aBase = Int8Arithmetic.pointer(to: a)!
        let residualBase = Int8Arithmetic.pointer(to: residual)
        let y = Tensor.build(Float.self, shape: outShape) { out in
            guard let o = out.baseAddress, out.count > 0 else { return }
            let shared = UncheckedSendable(o)
            weights.withUnsafeBufferPointer { wb in
                Parallel.forEach(rows, threads: context.threads) { range in
                    // Each chunk of rows quantizes its own part of A.
                    let aq = Int8Arithmetic.quantize(
                        aBase + range.lowerBound * depth, count: range.count * depth, layer.input)
                    // Rows of A four at a time, so each row of B loaded feeds four of them.
                    var sums = [Int32](repeating: 0, count: 4 * columns)
                    aq.withUnsafeBufferPointer { ab in
                        for block in stride(from: range.lowerBound, to: range.upperBound, by: 4) {
                            let count = min(4, range.upperBound - block)
                            sums.withUnsafeMutableBufferPointer { s in
                                Int8Arithmetic.dots(
                                    rows: count, Int8Arithmetic.base(ab) + (block - range.lowerBound) * depth,
                                    lda: depth, Int8Arithmetic.base(wb), count: columns, depth: depth,
                                    into: s.baseAddress!, ldo: columns)
                            }
                            for i in 0..<count {
                                let row = block + i
                                let residualRow = residualBase.map { $0 + row * columns }
                                sums.withUnsafeBufferPointer { s in
                                    finish.row(
                                        shared.value + row * columns, count: columns,
                                        sum: { Float(s[i * columns + $0]) }, scale: { columnScale[$0] },
                                        bias: { bias?[$0] ?? 0 }, residual: residualRow)
                                }
                            }
                        }
                    }
                }
            }
        }
        withExtendedLifetime((a, residual)) {}
        return [.tensor(y)]
    }
}
