import KilnIR

/// The window geometry of one pooling call as three axes (depth, height, width; leading axes of size 1 for
/// 1-D and 2-D pooling, as the CPU kernel does), packed into the kernels' `KilnDims` arguments.
struct CUDAPoolGeometry: Sendable, Equatable {
    var input: [Int]
    var output: [Int]
    var kernel: [Int]
    var strides: [Int]
    var dilations: [Int]
    var padBegin: [Int]
    /// The padded extent that counts toward averages with count_include_pad (input plus both pads).
    var paddedEnd: [Int]
    var planes: Int
    var spatialRank: Int
    /// N x C x output spatial sizes (the real spatial axes only).
    var outputShape: [Int]

    init(window: PoolGeometry?, shape: [Int]) throws {
        guard shape.count >= 3 else {
            throw KilnError.shapeMismatch("pooling needs an N x C x spatial input, got shape \(shape)")
        }
        let spatial = Array(shape[2...])
        guard spatial.count <= 3 else {
            throw KilnError.unsupported("CUDA pooling over \(spatial.count) spatial axes")
        }
        let window = window ?? PoolGeometry(kernel: spatial)
        let resolved = try window.resolve(spatial)
        let lead = 3 - spatial.count
        let ones = Array(repeating: 1, count: lead)
        let zeros = Array(repeating: 0, count: lead)
        input = ones + spatial
        output = ones + resolved.output
        kernel = ones + window.kernel
        strides = ones + window.strides
        dilations = ones + window.dilations
        padBegin = zeros + resolved.padBegin
        paddedEnd = ones + resolved.paddedEnd
        planes = shape[0] * shape[1]
        spatialRank = spatial.count
        outputShape = Array(shape[..<2]) + resolved.output
    }

    var outputCount: Int { planes * output.reduce(1, *) }

    /// [input dims, output dims], [kernel, strides, dilation d/h], [dilation w, pad begins, padded ends].
    var arguments: [CUDAArgument] {
        [
            .dims(input + output + [0, 0]), .dims(kernel + strides + Array(dilations[..<2])),
            .dims([dilations[2]] + padBegin + paddedEnd + [0]),
        ]
    }

    /// Per-axis window placement of output position `o` on axis `axis` (the CPU kernel's table): the window
    /// start, the valid tap range lo..<hi and the taps inside input plus padding. Mirrors `kiln_axis`.
    func taps(axis: Int, _ o: Int) -> (start: Int, lo: Int, hi: Int, padded: Int) {
        let (n, k, d) = (input[axis], kernel[axis], dilations[axis])
        let s = o * strides[axis] - padBegin[axis]
        let lo = s >= 0 ? 0 : (-s + d - 1) / d
        let last = s >= n ? 0 : min(k, (n - 1 - s) / d + 1)
        let limit = paddedEnd[axis] - padBegin[axis] - s
        return (s, lo, max(lo, last), limit <= 0 ? 0 : min(k, (limit + d - 1) / d))
    }
}

/// A global average pool over a chain's quantized channels-last values (`PoolLayer.dequantizing`): one thread
/// per image and channel sums the plane's bytes exactly in int32 (consecutive threads read consecutive
/// channels), then `(sum / plane - zeroPoint) · scale` is stored in the output's float type.
extension CUDAPoolLowering {
    static func lowerDequantizing(
        _ layer: PoolLayer, _ dequantizing: PoolLayer.Dequantizing, _ info: CUDANodeInfo
    ) throws -> CUDALowering {
        let x = try info.inputShape(0)
        let q = dequantizing.input
        guard layer.channelsLast, x.count >= 3, [.int8, .uint8].contains(q.type) else {
            throw KilnError.unsupported("CUDA pools quantized values channels-last only, int8 or uint8")
        }
        let (images, channels) = (x[0], x[x.count - 1])
        let plane = x.dropFirst().dropLast().reduce(1, *)
        guard plane <= 1 << 23 else {
            throw KilnError.unsupported("CUDA pools quantized planes of at most 2^23 values (an exact int32 sum)")
        }
        let output = try CUDAPrelude.requireTypeName(dequantizing.output)
        let input = q.type == .int8 ? "signed char" : "unsigned char"
        let total = images * channels
        guard total > 0 else { return CUDALowering(steps: []) }
        let name = "pool_dequantized_\(q.type)_\(dequantizing.output)"
        let code = """
            extern "C" __global__ void kiln_\(name)(
                const \(input)* __restrict__ x, \(output)* __restrict__ y, i64 images, i64 plane, i64 channels,
                float scale, float zeroPoint)
            {
                const i64 total = images * channels, step = (i64)gridDim.x * blockDim.x;
                for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const i64 n = i / channels, c = i - n * channels;
                    const \(input)* at = x + n * plane * channels + c;
                    int sum = 0;
                    for (i64 p = 0; p < plane; ++p) sum += (int)at[p * channels];
                    y[i] = \(output)(((float)sum / (float)plane - zeroPoint) * scale);
                }
            }

            """
        return CUDALowering(
            .launch(
                CUDALaunch(
                    source: CUDASource(name: name, code: code), function: "kiln_\(name)",
                    grid: CUDADim3(CUDAReductionLaunch.blocks(total, perBlock: threads)), block: CUDADim3(threads),
                    arguments: [
                        .pointer(.input(0)), .pointer(.output(0)), .int(images), .int(plane), .int(channels),
                        .float32(q.scale), .float32(Float(q.zeroPoint)),
                    ])))
    }
}

/// Lowers max, average and Lp pooling (1-D to 3-D, every window option PoolGeometry resolves, max pooling's
/// indices output) and their global forms. Global average and max pooling fold each plane one warp per plane
/// with the reduce kernels; windowed pooling runs one thread per output element.
enum CUDAPoolLowering {
    static let threads = 256

    static func lower(_ layer: PoolLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        if let dequantizing = layer.dequantizing { return try lowerDequantizing(layer, dequantizing, info) }
        let stored = try info.inputShape(0)
        let dtype = try info.input(0).dtype
        // Channels-last storage ([N, spatial..., C]): the geometry is the channels-first one. Each kernel below
        // checks the dtype itself (int8 max pooling, a chain's, has only the channels-last one).
        let last = layer.channelsLast
        let shape = last ? ChannelsLast.permuted(stored, ChannelsLast.toFirst(rank: stored.count)) : stored
        let geometry = try CUDAPoolGeometry(window: layer.window, shape: shape)
        guard geometry.outputCount > 0 else { return CUDALowering(steps: []) }
        let indices = layer.outputsIndices && layer.op == .max && info.reductionHasOutput(1)
        guard !(last && indices) else { throw KilnError.unsupported("channels-last max pooling with indices") }
        let plane = geometry.input.reduce(1, *)
        if layer.window == nil, !indices, plane > 0 {
            let plan =
                last
                ? CUDAReduceFactorization(outer: shape[0], reduced: plane, inner: shape[1])
                : CUDAReduceFactorization(outer: geometry.planes, reduced: plane, inner: 1)
            switch layer.op {
            case .max:
                return CUDALowering(
                    steps: try CUDAReductionLowerings.reduceSteps(
                        .maxIgnoringNaN, dtype, plan, input: .input(0), output: .output(0)))
            case .average:
                return CUDALowering(
                    steps: try CUDAReductionLowerings.reduceSteps(
                        .mean, dtype, plan, input: .input(0), output: .output(0)))
            case .lp(let p) where p == 2:
                return CUDALowering(
                    steps: try CUDAReductionLowerings.reduceSteps(
                        .l2, dtype, plan, input: .input(0), output: .output(0)))
            case .lp:
                break
            }
        }
        if last {
            // Written straight into a concat's columns where it offers them and the kernel can.
            let pixels = try info.outputShape(0).dropLast().reduce(1, *)
            if let slot = info.outputSlot, slot.rows == pixels, slot.rowElements == shape[1],
                let launch = try CUDAChannelsLastPool.launch(
                    layer, shape: shape, dtype: dtype, pixelStride: slot.rowStride)
            {
                var lowering = CUDALowering(.launch(launch))
                lowering.writesSlot = true
                return lowering
            }
            guard let launch = try CUDAChannelsLastPool.launch(layer, shape: shape, dtype: dtype) else {
                throw KilnError.unsupported(
                    "CUDA channels-last pooling: \(layer.op) of \(dtype.onnxName) over \(shape.count - 2) spatial axes")
            }
            return CUDALowering(.launch(launch))
        }
        let source = try self.source(dtype, narrow: fitsNarrow(geometry))
        let total = geometry.outputCount
        var arguments: [CUDAArgument] = [.pointer(.input(0)), .pointer(.output(0))]
        let function: String
        switch layer.op {
        case .max where indices:
            function = "pool_max_indices"
            arguments.append(.pointer(.output(1)))
            arguments += [.int(total)] + geometry.arguments
            arguments += [.int32(Int32(geometry.spatialRank)), .int32(layer.columnMajorIndices ? 1 : 0)]
        case .max:
            function = "pool_max"
            arguments += [.int(total)] + geometry.arguments
        case .average(let include):
            function = "pool_average"
            arguments += [.int(total)] + geometry.arguments + [.int32(include ? 1 : 0)]
        case .lp(let p):
            function = "pool_lp"
            arguments += [.int(total)] + geometry.arguments + [dtype == .float64 ? .float64(Double(p)) : .float32(p)]
        }
        return CUDALowering(
            .launch(
                CUDALaunch(
                    source: source, function: function,
                    grid: CUDADim3(CUDAReductionLaunch.blocks(total, perBlock: threads)), block: CUDADim3(threads),
                    arguments: arguments)))
    }

    /// The kernels for `dtype`, with their index arithmetic in 32 bits (`narrow`) or 64: 64-bit divisions
    /// made ResNet-50's max pooling at batch 64 three times slower than the channels-last kernel.
    static func source(_ dtype: DType, narrow: Bool) throws -> CUDASource {
        let (t, a) = try CUDAReductionTypes.require(dtype, "pooling")
        return CUDASource(
            name: "pool_\(dtype)" + (narrow ? "_i32" : ""),
            code: CUDAReductionSources.mathHeader(element: t, accumulator: a)
                + "typedef \(narrow ? "int" : "i64") IX;\n" + kernels)
    }

    /// Whether every index a pooling kernel computes over `geometry` fits in 32 bits, with room for the grid
    /// loop's last step past the end.
    static func fitsNarrow(_ geometry: CUDAPoolGeometry) -> Bool {
        let limit = 1 << 30
        return geometry.planes * geometry.input.reduce(1, *) < limit && geometry.outputCount < limit
    }

    /// One thread per output element; `KILN_POOL_SETUP` decodes the output position and each axis's taps.
    private static let kernels = """
        struct KilnTaps { IX start, lo, hi, padded; };
        __device__ __forceinline__ KilnTaps kiln_axis(IX o, IX n, IX k, IX stride, IX d, IX pb, IX pe) {
            KilnTaps t;
            t.start = o * stride - pb;
            t.lo = t.start >= 0 ? 0 : (-t.start + d - 1) / d;
            IX last = t.start >= n ? 0 : min(k, (n - 1 - t.start) / d + 1);
            t.hi = max(t.lo, last);
            const IX limit = pe - pb - t.start;
            t.padded = limit <= 0 ? 0 : min(k, (limit + d - 1) / d);
            return t;
        }

        #define KILN_POOL_PARAMS i64 total, KilnDims g0, KilnDims g1, KilnDims g2
        #define KILN_POOL_SETUP \\
            const IX D = (IX)g0.v[0], H = (IX)g0.v[1], W = (IX)g0.v[2], OD = (IX)g0.v[3], OH = (IX)g0.v[4], OW = (IX)g0.v[5]; \\
            const IX ow = q % OW; IX rest = q / OW; const IX oh = rest % OH; rest /= OH; \\
            const IX od = rest % OD; const IX plane = rest / OD; \\
            const KilnTaps td = kiln_axis(od, D, g1.v[0], g1.v[3], g1.v[6], g2.v[1], g2.v[4]); \\
            const KilnTaps th = kiln_axis(oh, H, g1.v[1], g1.v[4], g1.v[7], g2.v[2], g2.v[5]); \\
            const KilnTaps tw = kiln_axis(ow, W, g1.v[2], g1.v[5], g2.v[0], g2.v[3], g2.v[6]); \\
            const IX dd = (IX)g1.v[6], dh = (IX)g1.v[7], dw = (IX)g2.v[0]; \\
            const T* src = x + plane * D * H * W;
        #define KILN_POOL_LOOP(BODY) \\
            for (IX kd = td.lo; kd < td.hi; ++kd) { \\
                const IX id = td.start + kd * dd; \\
                for (IX kh = th.lo; kh < th.hi; ++kh) { \\
                    const IX rowAt = (id * H + th.start + kh * dh) * W + tw.start; \\
                    for (IX kw = tw.lo; kw < tw.hi; ++kw) { const IX at = rowAt + kw * dw; BODY } \\
                } \\
            }
        #define KILN_GRID_LOOP(q) \\
            for (IX q = (IX)blockIdx.x * blockDim.x + threadIdx.x; q < (IX)total; q += (IX)gridDim.x * blockDim.x)

        /* A NaN tap never wins and an empty window gives -inf, as on the CPU. */
        extern "C" __global__ void pool_max(const T* __restrict__ x, T* __restrict__ y, KILN_POOL_PARAMS) {
            KILN_GRID_LOOP(q) {
                KILN_POOL_SETUP
                A best = KILN_NEG_INF;
                KILN_POOL_LOOP({ const A v = (A)src[at]; if (v > best) best = v; })
                y[q] = (T)best;
            }
        }

        /* Indices into the flattened input: row-major, or column-major over the spatial axes. */
        extern "C" __global__ void pool_max_indices(
            const T* __restrict__ x, T* __restrict__ y, i64* __restrict__ indices, KILN_POOL_PARAMS, int spatialRank,
            int columnMajor) {
            KILN_GRID_LOOP(q) {
                KILN_POOL_SETUP
                A best = KILN_NEG_INF;
                IX found = -1;
                KILN_POOL_LOOP({ const A v = (A)src[at]; if (v > best || found < 0) { best = v; found = at; } })
                y[q] = (T)best;
                if (found < 0) found = 0;
                IX index = found;
                if (columnMajor) {
                    const IX iw = found % W, ih = (found / W) % H, id = found / (W * H);
                    index = spatialRank == 1 ? iw : spatialRank == 2 ? ih + iw * H : id + ih * D + iw * D * H;
                }
                indices[q] = (i64)plane * D * H * W + index;
            }
        }

        extern "C" __global__ void pool_average(
            const T* __restrict__ x, T* __restrict__ y, KILN_POOL_PARAMS, int countIncludePad) {
            KILN_GRID_LOOP(q) {
                KILN_POOL_SETUP
                A sum = 0;
                KILN_POOL_LOOP({ sum += (A)src[at]; })
                const IX count = countIncludePad ? td.padded * th.padded * tw.padded
                                                  : (td.hi - td.lo) * (th.hi - th.lo) * (tw.hi - tw.lo);
                y[q] = (T)(count > 0 ? sum / (A)count : (A)0);
            }
        }

        extern "C" __global__ void pool_lp(const T* __restrict__ x, T* __restrict__ y, KILN_POOL_PARAMS, A p) {
            KILN_GRID_LOOP(q) {
                KILN_POOL_SETUP
                A sum = 0;
                KILN_POOL_LOOP({ const A v = KILN_ABS((A)src[at]); sum += p == (A)2 ? v * v : KILN_POW(v, p); })
                y[q] = (T)(p == (A)2 ? KILN_SQRT(sum) : KILN_POW(sum, (A)1 / p));
            }
        }

        """
}
