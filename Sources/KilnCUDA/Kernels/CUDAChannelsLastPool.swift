import KilnIR

/// Windowed 2-D max and average pooling stored channels-last (`[N, H, W, C]`) as Kiln's vector kernel: one
/// output pixel and up to 16 bytes of neighbouring channels per thread, 32-bit indices where the sizes allow.
/// Averages divide by the taps inside the input, or with count_include_pad by those inside the input and its
/// padding (as `CUDAPoolGeometry.taps` counts them).
enum CUDAChannelsLastPool {
    static let threads = 256
    static let maxBlocks = 132 * 16

    /// The launch for `layer` over the channels-first `shape` `[N, C, H, W]`, or nil when this kernel does not
    /// cover it (Lp pooling, other ranks and dtypes; int8 max pooling only, the chained form of `Int8Chaining`).
    /// With `pixelStride`, output pixels are that many elements apart (a concat's columns, `CUDAOutputSlot`);
    /// not for int8.
    static func launch(_ layer: PoolLayer, shape: [Int], dtype: DType, pixelStride: Int? = nil) throws -> CUDALaunch? {
        guard shape.count == 4, let window = layer.window,
            [.float32, .float16, .bfloat16].contains(dtype) || (dtype == .int8 && layer.op == .max)
        else { return nil }
        let resolved = try window.resolve(Array(shape[2...]))
        let isMax: Bool
        var includePad = false
        switch layer.op {
        case .max: isMax = true
        case .average(let include):
            isMax = false
            includePad = include
        case .lp: return nil
        }
        let channels = shape[1]
        let vector = CUDAChannelsLastDepthwise.vectorWidth(channels: channels, dtype: dtype)
        let (oh, ow) = (resolved.output[0], resolved.output[1])
        let total = shape[0] * oh * ow * channels / vector
        guard total > 0 else { return nil }
        let blocks = max(1, min((total + threads - 1) / threads, maxBlocks))
        let int8Max = dtype == .int8 && vector == 16 && window.kernel[0] * window.kernel[1] <= 16
        if pixelStride != nil && dtype == .int8 { return nil }
        let source =
            int8Max
            ? CUDASource(
                name: "pool_nhwc_max_i8_k\(window.kernel[0])x\(window.kernel[1])",
                code: "#define KILN_KH \(window.kernel[0])\n#define KILN_KW \(window.kernel[1])\n" + int8MaxCode)
            : CUDAPrelude.specialized(
                "pool_nhwc_\(isMax ? "max" : "avg")_v\(vector)",
                "#define KILN_VEC \(vector)\n#define KILN_MAX \(isMax ? 1 : 0)\n#define KILN_LOWEST \(lowest(dtype))\n"
                    + code, dtype: dtype)
        return CUDALaunch(
            source: source, function: int8Max ? "kiln_pool_nhwc_max_i8" : "kiln_pool_nhwc", grid: CUDADim3(blocks),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(.output(0)),
                .dims([shape[0], channels, shape[2], shape[3], oh, ow]),
                .dims([
                    window.kernel[0], window.kernel[1], window.strides[0], window.strides[1], resolved.padBegin[0],
                    resolved.padBegin[1],
                ]),
                // Taps at input rows and columns below these (the input and its padding) count with count_include_pad.
                .dims([
                    window.dilations[0], window.dilations[1], resolved.paddedEnd[0] - resolved.padBegin[0],
                    resolved.paddedEnd[1] - resolved.padBegin[1], includePad ? 1 : 0, pixelStride ?? channels,
                ]),
            ])
    }

    /// What a max over no taps gives: -inf, or the least int8.
    static func lowest(_ dtype: DType) -> String { dtype == .int8 ? "-128.0f" : "-__int_as_float(0x7f800000)" }

    /// Int8 max pooling over 16 channels a thread (the channels a multiple of 16), without converting a byte:
    /// four bytes at a time with the SIMD signed maximum, the window's taps unrolled (KILN_KH x KILN_KW are
    /// compile-time) so every load is in flight before the first maximum. The arguments are those of
    /// `kiln_pool_nhwc`; an empty window gives -128.
    private static let int8MaxCode = """
        extern "C" __global__ void kiln_pool_nhwc_max_i8(
            const signed char* __restrict__ x, signed char* __restrict__ y, KilnDims size, KilnDims window,
            KilnDims taps)
        {
            const i64 C = size.v[1], H = size.v[2], W = size.v[3], OH = size.v[4], OW = size.v[5];
            const int SH = (int)window.v[2], SW = (int)window.v[3], PH = (int)window.v[4], PW = (int)window.v[5];
            const int DH = (int)taps.v[0], DW = (int)taps.v[1];
            const i64 groups = C / 16, total = size.v[0] * OH * OW * groups;
            const bool narrow = size.v[0] * H * W * C < 2147483647LL && total < 2147483647LL;
            const i64 step = (i64)gridDim.x * blockDim.x;
            for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                i64 g, n;
                int oh, ow;
                if (narrow) {
                    unsigned rest = (unsigned)i / (unsigned)groups;
                    g = (unsigned)i - rest * (unsigned)groups;
                    const unsigned q = rest / (unsigned)OW;
                    ow = (int)(rest - q * (unsigned)OW);
                    n = q / (unsigned)OH;
                    oh = (int)(q - (unsigned)n * (unsigned)OH);
                } else {
                    i64 rest = i / groups;
                    g = i - rest * groups;
                    ow = (int)(rest % OW);
                    rest /= OW;
                    oh = (int)(rest % OH);
                    n = rest / OH;
                }
                const int4* image = reinterpret_cast<const int4*>(x + n * H * W * C) + g;
                int4 v[KILN_KH * KILN_KW];
                #pragma unroll
                for (int kh = 0; kh < KILN_KH; ++kh) {
                    #pragma unroll
                    for (int kw = 0; kw < KILN_KW; ++kw) {
                        const int ih = oh * SH - PH + kh * DH, iw = ow * SW - PW + kw * DW;
                        const bool inside = ih >= 0 && ih < (int)H && iw >= 0 && iw < (int)W;
                        const int lowest = (int)0x80808080;
                        v[kh * KILN_KW + kw] =
                            inside ? image[((i64)ih * W + iw) * groups] : make_int4(lowest, lowest, lowest, lowest);
                    }
                }
                int4 m = v[0];
                #pragma unroll
                for (int t = 1; t < KILN_KH * KILN_KW; ++t) {
                    m.x = __vmaxs4(m.x, v[t].x);
                    m.y = __vmaxs4(m.y, v[t].y);
                    m.z = __vmaxs4(m.z, v[t].z);
                    m.w = __vmaxs4(m.w, v[t].w);
                }
                reinterpret_cast<int4*>(y)[i] = m;
            }
        }

        """

    private static let code = """
        /* X [N, H, W, C] -> Y [N, OH, OW, C]; size: N, C, H, W, OH, OW; window: KH, KW, SH, SW, PH, PW;
           taps: DH, DW, the padded row and column ends, whether padding taps count, the elements between output
           pixels (C, or more inside a concat's output). Max: a NaN tap never wins
           and an empty window gives KILN_LOWEST (-inf, or -128 for int8, as the CPU); average: the sum over the taps inside the input divided
           by their count, or by the count of taps inside the input and its padding. */
        typedef KILN_T T;
        struct __align__(sizeof(T) * KILN_VEC) KilnVec { T v[KILN_VEC]; };

        template <typename IX>
        __device__ __forceinline__ void kiln_pool_nhwc_body(
            const T* __restrict__ x, T* __restrict__ y, const KilnDims& size, const KilnDims& window,
            const KilnDims& taps)
        {
            const IX C = (IX)size.v[1], H = (IX)size.v[2], W = (IX)size.v[3], OH = (IX)size.v[4], OW = (IX)size.v[5];
            const int KH = (int)window.v[0], KW = (int)window.v[1], SH = (int)window.v[2], SW = (int)window.v[3];
            const int PH = (int)window.v[4], PW = (int)window.v[5], DH = (int)taps.v[0], DW = (int)taps.v[1];
            const IX groups = C / KILN_VEC;
            const IX total = (IX)size.v[0] * OH * OW * groups;
            const IX step = (IX)gridDim.x * blockDim.x;
            const IX YS = (IX)taps.v[5];
            for (IX i = (IX)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                const IX g = i % groups;
                IX rest = i / groups;
                const IX pixel = rest;
                const int ow = (int)(rest % OW);
                rest /= OW;
                const int oh = (int)(rest % OH);
                const IX n = rest / OH;
                const T* xp = x + n * H * W * C + g * KILN_VEC;
                float acc[KILN_VEC];
                #pragma unroll
                for (int v = 0; v < KILN_VEC; ++v) acc[v] = KILN_MAX ? KILN_LOWEST : 0.0f;
                int count = 0;
                for (int kh = 0; kh < KH; ++kh) {
                    const int ih = oh * SH - PH + kh * DH;
                    if (ih < 0 || ih >= (int)H) continue;
                    for (int kw = 0; kw < KW; ++kw) {
                        const int iw = ow * SW - PW + kw * DW;
                        if (iw < 0 || iw >= (int)W) continue;
                        const KilnVec in = *(const KilnVec*)(xp + ((IX)ih * W + (IX)iw) * C);
                        #pragma unroll
                        for (int v = 0; v < KILN_VEC; ++v) {
                            const float t = (float)in.v[v];
                            if (KILN_MAX) { if (t > acc[v]) acc[v] = t; } else acc[v] += t;
                        }
                        ++count;
                    }
                }
                if (!KILN_MAX && taps.v[4]) {
                    int rows = 0, columns = 0;
                    for (int kh = 0; kh < KH; ++kh) rows += oh * SH - PH + kh * DH < (int)taps.v[2];
                    for (int kw = 0; kw < KW; ++kw) columns += ow * SW - PW + kw * DW < (int)taps.v[3];
                    count = rows * columns;
                }
                KilnVec result;
                #pragma unroll
                for (int v = 0; v < KILN_VEC; ++v)
                    result.v[v] = (T)(KILN_MAX ? acc[v] : count > 0 ? acc[v] / (float)count : 0.0f);
                *(KilnVec*)(y + pixel * YS + g * KILN_VEC) = result;
            }
        }

        extern "C" __global__ void kiln_pool_nhwc(
            const T* __restrict__ x, T* __restrict__ y, KilnDims size, KilnDims window, KilnDims taps)
        {
            if (size.v[0] * size.v[1] * size.v[2] * size.v[3] < 2147483647LL
                && size.v[0] * taps.v[5] * size.v[4] * size.v[5] < 2147483647LL)
                kiln_pool_nhwc_body<unsigned int>(x, y, size, window, taps);
            else
                kiln_pool_nhwc_body<i64>(x, y, size, window, taps);
        }

        """
}
