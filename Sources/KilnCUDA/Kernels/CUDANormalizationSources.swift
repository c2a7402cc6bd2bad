import KilnIR

/// CUDA C for the normalization kernels.
///
/// Trailing-axes normalization (layer, RMS) over rows of n elements, scale and bias indexed by the position in
/// the row times their stride (1, or 0 for one broadcast value):
/// - `norm_warpv_V` (float32, float16 or bfloat16, n a multiple of `vectorWidth`, n <= 1024): one warp per
///   row, V groups of `vectorWidth` elements (16 bytes) per lane held in registers;
/// - `norm_warp1_V` (n <= 1024): one warp per row, V scalars per lane;
/// - `norm_block`: one block per row, three passes over memory, for longer rows.
/// Statistics are two-pass (mean, then the mean squared deviation), like the CPU kernel.
/// Arguments: x, scale, bias, y, [mean, invStdDev,] rows, n, scaleStride, biasStride, epsilon.
enum CUDANormalizationSources {
    static let scalarVariants = [1, 2, 4, 8, 16, 32]

    /// Elements per 16-byte access of `dtype` where the vector kernels handle it (float32 and the 16-bit floats).
    static func vectorWidth(_ dtype: DType) -> Int? {
        [.float32, .float16, .bfloat16].contains(dtype) ? 16 / dtype.byteSize : nil
    }

    /// The trailing-axes module: `center` subtracts the mean (layer) or not (RMS); `stats` also writes the
    /// per-row mean and inverse standard deviation.
    static func trailing(_ dtype: DType, center: Bool, stats: Bool) throws -> CUDASource {
        let (t, a) = try CUDAReductionTypes.require(dtype, "normalization")
        let name =
            (center ? "layer_norm" : "rms_norm") + (stats ? "_stats" : "") + "_"
            + dtype.description
        let flags = "\(center ? "true" : "false"), \(stats ? "true" : "false")"
        let statsParams = "T* __restrict__ meanOut, T* __restrict__ invOut, "
        let statsArgs = stats ? "meanOut, invOut, " : "0, 0, "
        let params = """
            const T* __restrict__ x, const T* __restrict__ scale, const T* __restrict__ bias, T* __restrict__ y, \
            \(stats ? statsParams : "")i64 rows, i64 n, i64 scaleStride, i64 biasStride, A eps
            """
        let args = "x, scale, bias, y, \(statsArgs)rows, n, scaleStride, biasStride, eps"
        var code = CUDAReductionSources.mathHeader(element: t, accumulator: a) + CUDASoftmaxLowering.common
        code += trailingTemplates
        // Enough groups per lane for the longest row the warp kernels take.
        let vectors =
            vectorWidth(dtype).map { w in
                (1...CUDANormalizationLowering.warpRowLimit / (32 * w)).map { ($0, w) }
            } ?? []
        for (v, w) in vectors {
            code += """
                extern "C" __global__ void norm_warpv_\(v)(\(params)) {
                    norm_warp<\(v), \(w), \(flags)>(\(args));
                }

                """
        }
        for v in scalarVariants {
            code += """
                extern "C" __global__ void norm_warp1_\(v)(\(params)) {
                    norm_warp<\(v), 1, \(flags)>(\(args));
                }

                """
        }
        code += """
            extern "C" __global__ void norm_block(\(params)) {
                norm_block_row<\(flags)>(\(args));
            }

            """
        return CUDASource(name: name, code: code)
    }

    private static let trailingTemplates = """
        /* W elements at once: one 16-byte access with W 4 in float32 or W 8 in a 16-bit type (n % W == 0, rows
           aligned to W elements), W 1 scalars. Scale and bias have stride 1 (loaded W at once too) or 0 (one value). */
        template <int W> struct __align__(sizeof(T) * W) KilnNormVec { T e[W]; };
        template <int V, int W, bool CENTER, bool STATS>
        __device__ __forceinline__ void norm_warp(
            const T* __restrict__ x, const T* __restrict__ scale, const T* __restrict__ bias, T* __restrict__ y,
            T* __restrict__ meanOut, T* __restrict__ invOut, i64 rows, i64 n, i64 scaleStride, i64 biasStride, A eps) {
            const int lane = threadIdx.x & 31;
            const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
            for (i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
                const T* p = x + row * n;
                T* q = y + row * n;
                A v[V * W];
                A sum = 0;
                #pragma unroll
                for (int i = 0; i < V; ++i) {
                    const int c = (i * 32 + lane) * W;
                    if (c < n) {
                        const KilnNormVec<W> t = *reinterpret_cast<const KilnNormVec<W>*>(p + c);
                        #pragma unroll
                        for (int w = 0; w < W; ++w) { v[i * W + w] = (A)t.e[w]; sum += v[i * W + w]; }
                    } else {
                        #pragma unroll
                        for (int w = 0; w < W; ++w) v[i * W + w] = 0;
                    }
                }
                A mean = 0;
                if (CENTER) mean = kiln_warp_sum(sum) / (A)n;
                A sq = 0;
                #pragma unroll
                for (int i = 0; i < V; ++i) {
                    if ((i * 32 + lane) * W < n) {
                        #pragma unroll
                        for (int w = 0; w < W; ++w) { const A d = v[i * W + w] - mean; sq += d * d; }
                    }
                }
                sq = kiln_warp_sum(sq);
                const A inv = (A)1 / KILN_SQRT(sq / (A)n + eps);
                if (STATS && lane == 0) { meanOut[row] = (T)mean; invOut[row] = (T)inv; }
                #pragma unroll
                for (int i = 0; i < V; ++i) {
                    const int c = (i * 32 + lane) * W;
                    if (c < n) {
                        KilnNormVec<W> g, b, t;
                        if (scaleStride == 1) g = *reinterpret_cast<const KilnNormVec<W>*>(scale + c);
                        else for (int w = 0; w < W; ++w) g.e[w] = scale[0];
                        if (biasStride == 1) b = *reinterpret_cast<const KilnNormVec<W>*>(bias + c);
                        else for (int w = 0; w < W; ++w) b.e[w] = bias[0];
                        #pragma unroll
                        for (int w = 0; w < W; ++w) t.e[w] = (T)((v[i * W + w] - mean) * inv * (A)g.e[w] + (A)b.e[w]);
                        *reinterpret_cast<KilnNormVec<W>*>(q + c) = t;
                    }
                }
            }
        }

        template <bool CENTER, bool STATS>
        __device__ __forceinline__ void norm_block_row(
            const T* __restrict__ x, const T* __restrict__ scale, const T* __restrict__ bias, T* __restrict__ y,
            T* __restrict__ meanOut, T* __restrict__ invOut, i64 rows, i64 n, i64 scaleStride, i64 biasStride, A eps) {
            __shared__ A red[32];
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                const T* p = x + row * n;
                T* q = y + row * n;
                A mean = 0;
                if (CENTER) {
                    A sum = 0;
                    for (i64 k = threadIdx.x; k < n; k += blockDim.x) sum += (A)p[k];
                    mean = kiln_block_all(sum, red, false) / (A)n;
                }
                A sq = 0;
                for (i64 k = threadIdx.x; k < n; k += blockDim.x) { const A d = (A)p[k] - mean; sq += d * d; }
                const A inv = (A)1 / KILN_SQRT(kiln_block_all(sq, red, false) / (A)n + eps);
                if (STATS && threadIdx.x == 0) { meanOut[row] = (T)mean; invOut[row] = (T)inv; }
                for (i64 k = threadIdx.x; k < n; k += blockDim.x) {
                    q[k] = (T)(((A)p[k] - mean) * inv * (A)scale[k * scaleStride] + (A)bias[k * biasStride]);
                }
            }
        }

        """

    /// Instance and group normalization: `rows(x, scale, bias, y, rows, n, segment, groups, perGroup,
    /// scaleStride, biasStride, eps)` normalizes each contiguous row of n elements by its own statistics (one
    /// block per row); element k of row r uses the parameters at (r % groups) * perGroup + k / segment, times
    /// their stride (1, or 0 for one broadcast value).
    /// `batch_norm(x, scale, bias, mean, var, y, total, channels, spatial, strides, eps)` is inference batch
    /// normalization; `strides` holds the four parameters' strides (1, or 0 for one broadcast value).
    static func planes(_ dtype: DType) throws -> CUDASource {
        let (t, a) = try CUDAReductionTypes.require(dtype, "normalization")
        let code =
            CUDAReductionSources.mathHeader(element: t, accumulator: a) + CUDASoftmaxLowering.common + """
                extern "C" __global__ void rows(
                    const T* __restrict__ x, const T* __restrict__ scale, const T* __restrict__ bias, T* __restrict__ y,
                    i64 rows, i64 n, i64 segment, i64 groups, i64 perGroup, i64 scaleStride, i64 biasStride, A eps) {
                    __shared__ A red[32];
                    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                        const T* p = x + row * n;
                        T* q = y + row * n;
                        A sum = 0;
                        for (i64 k = threadIdx.x; k < n; k += blockDim.x) sum += (A)p[k];
                        const A mean = kiln_block_all(sum, red, false) / (A)n;
                        A sq = 0;
                        for (i64 k = threadIdx.x; k < n; k += blockDim.x) { const A d = (A)p[k] - mean; sq += d * d; }
                        const A inv = (A)1 / KILN_SQRT(kiln_block_all(sq, red, false) / (A)n + eps);
                        const i64 first = (row % groups) * perGroup;
                        for (i64 k = threadIdx.x; k < n; k += blockDim.x) {
                            const i64 at = first + k / segment;
                            const A g = (A)scale[at * scaleStride] * inv;
                            q[k] = (T)((A)p[k] * g + ((A)bias[at * biasStride] - mean * g));
                        }
                    }
                }

                /* Local response normalization across channels (NCHW...): each thread one element,
                   y = x / (bias + alpha / size * sum of x^2 over channels c - before .. c + after)^beta. */
                extern "C" __global__ void lrn(
                    const T* __restrict__ x, T* __restrict__ y, i64 total, i64 channels, i64 spatial, i64 before,
                    i64 after, A k, A beta, A bias) {
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
                        const i64 c = (i / spatial) % channels;
                        const i64 lo = c - before < 0 ? 0 : c - before;
                        const i64 hi = c + after >= channels ? channels - 1 : c + after;
                        const T* p = x + i + (lo - c) * spatial;
                        A sum = 0;
                        for (i64 j = lo; j <= hi; ++j, p += spatial) { const A v = (A)*p; sum += v * v; }
                        y[i] = (T)((A)x[i] / KILN_POW(bias + k * sum, beta));
                    }
                }

                extern "C" __global__ void batch_norm(
                    const T* __restrict__ x, const T* __restrict__ scale, const T* __restrict__ bias,
                    const T* __restrict__ mean, const T* __restrict__ var, T* __restrict__ y,
                    i64 total, i64 channels, i64 spatial, KilnDims strides, A eps) {
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
                        const i64 c = (i / spatial) % channels;
                        const A g = (A)scale[c * strides.v[0]] / KILN_SQRT((A)var[c * strides.v[3]] + eps);
                        const A b = (A)bias[c * strides.v[1]] - (A)mean[c * strides.v[2]] * g;
                        y[i] = (T)((A)x[i] * g + b);
                    }
                }

                """
        return CUDASource(name: "norm_planes_\(dtype)", code: code)
    }
}
