import KilnIR

/// Softmax, LogSoftmax and Hardmax along one axis, viewed as [outer, n, inner].
///
/// inner == 1 (the usual last-axis case): rows up to 1024 elements run one warp per row with the row held in
/// registers (`softmax_warp_V`, V elements per lane); rows up to 4096 one 512-thread block per row, also in
/// registers (`softmax_block_V`); longer rows re-read memory (`softmax_block_0`). inner > 1 runs one thread
/// per column (`softmax_columns`), which keeps a warp's loads consecutive. Statistics accumulate in the
/// accumulator type with the row maximum subtracted, as the CPU kernel does.
enum CUDASoftmaxLowering {
    static let warpVariants = [1, 2, 4, 8, 16, 32]
    static let blockVariants = [1, 2, 4, 8]
    static let blockThreads = 512
    static let warpsPerBlock = 8

    static func lower(_ layer: SoftmaxLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let shape = try info.inputShape(0)
        let dtype = try info.input(0).dtype
        let source = try self.source(layer.variant, dtype, zeroNaN: layer.zeroNaN)
        var plan = CUDAReduceFactorization(outer: 1, reduced: 1, inner: 1)
        if !shape.isEmpty {
            let axis = try reductionAxis(layer.axis, rank: shape.count)
            plan = CUDAReduceFactorization.around(shape: shape, axis: axis)
            if layer.flattenTail { plan = .init(outer: plan.outer, reduced: plan.reduced * plan.inner, inner: 1) }
        }
        guard plan.outer * plan.reduced * plan.inner > 0 else { return CUDALowering(steps: []) }
        return CUDALowering(launch(source, layer.variant, plan))
    }

    /// The launch for a [outer, n, inner] view; pure so tests can check the choice of kernel.
    static func launch(
        _ source: CUDASource, _ variant: SoftmaxLayer.Variant, _ plan: CUDAReduceFactorization
    )
        -> CUDAStep
    {
        let (rows, n) = (plan.outer, plan.reduced)
        if plan.inner > 1 {
            let columns = plan.outer * plan.inner
            return .launch(
                CUDALaunch(
                    source: source, function: variant == .hardmax ? "hardmax_columns" : "softmax_columns",
                    grid: CUDADim3(CUDAReductionLaunch.blocks(columns, perBlock: 256)), block: CUDADim3(256),
                    arguments: [.pointer(.input(0)), .pointer(.output(0)), .int(plan.outer), .int(n), .int(plan.inner)]
                ))
        }
        let arguments: [CUDAArgument] = [.pointer(.input(0)), .pointer(.output(0)), .int(rows), .int(n)]
        let warpGrid = CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: warpsPerBlock))
        let warpBlock = CUDADim3(32 * warpsPerBlock)
        if variant == .hardmax {
            return .launch(
                CUDALaunch(
                    source: source, function: "hardmax_rows", grid: warpGrid, block: warpBlock, arguments: arguments))
        }
        if n <= 32 * (warpVariants.last ?? 1) {
            let v = CUDAReductionLaunch.powerOfTwo(atLeast: CUDAReductionLaunch.ceilDiv(n, 32))
            return .launch(
                CUDALaunch(
                    source: source, function: "softmax_warp_\(v)", grid: warpGrid, block: warpBlock,
                    arguments: arguments))
        }
        let perThread = CUDAReductionLaunch.powerOfTwo(atLeast: CUDAReductionLaunch.ceilDiv(n, blockThreads))
        let v = perThread <= (blockVariants.last ?? 1) ? perThread : 0
        return .launch(
            CUDALaunch(
                source: source, function: "softmax_block_\(v)",
                grid: CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: 1)), block: CUDADim3(blockThreads),
                arguments: arguments))
    }

    static func source(_ variant: SoftmaxLayer.Variant, _ dtype: DType, zeroNaN: Bool = false) throws -> CUDASource {
        let (t, a) = try CUDAReductionTypes.require(dtype, variant.rawValue)
        let header = CUDAReductionSources.mathHeader(element: t, accumulator: a)
        let name = "\(variant.rawValue)_\(dtype)" + (zeroNaN ? "_zero_nan" : "")
        if variant == .hardmax { return CUDASource(name: name, code: header + hardmaxKernels) }
        let log = variant == .logSoftmax
        // How a cached exponent-shifted value becomes the output: `v` holds x (log) or exp(x - m) (softmax); with
        // zeroNaN a NaN result (a row of -inf) is written as 0.
        func guarded(_ e: String) -> String { zeroNaN ? "kiln_zero_nan(\(e))" : e }
        let write = guarded(log ? "(A)(v[i] - shift)" : "(A)(v[i] * scale)")
        let finish = log ? "const A shift = m + KILN_LOG(s);" : "const A scale = (A)1 / s;"
        let keep = log ? "s += KILN_EXP(v[i] - m);" : "v[i] = KILN_EXP(v[i] - m); s += v[i];"
        let direct = guarded(log ? "(A)(xv - shift)" : "(A)(KILN_EXP(xv - m) * scale)")
        var code = header + common
        code += "__device__ __forceinline__ A kiln_zero_nan(A v) { return v != v ? (A)0 : v; }\n"
        code += """
            template <int V>
            __device__ __forceinline__ void softmax_warp(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
                const int lane = threadIdx.x & 31;
                const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
                for (i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
                    const T* p = x + row * n;
                    T* q = y + row * n;
                    A v[V];
                    A m = KILN_NEG_INF;
                    #pragma unroll
                    for (int i = 0; i < V; ++i) {
                        const i64 k = (i64)i * 32 + lane;
                        v[i] = k < n ? (A)p[k] : KILN_NEG_INF;
                        m = KILN_MAX(m, v[i]);
                    }
                    m = kiln_warp_max(m);
                    A s = 0;
                    #pragma unroll
                    for (int i = 0; i < V; ++i) {
                        if ((i64)i * 32 + lane < n) { \(keep) }
                    }
                    s = kiln_warp_sum(s);
                    \(finish)
                    #pragma unroll
                    for (int i = 0; i < V; ++i) {
                        const i64 k = (i64)i * 32 + lane;
                        if (k < n) q[k] = (T)\(write);
                    }
                }
            }

            /* V > 0: the row lives in registers (n <= V * blockDim.x); V == 0: three passes over memory. */
            template <int V>
            __device__ __forceinline__ void softmax_block(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
                __shared__ A red[32];
                for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                    const T* p = x + row * n;
                    T* q = y + row * n;
                    A v[V > 0 ? V : 1];
                    A m = KILN_NEG_INF;
                    if (V > 0) {
                        #pragma unroll
                        for (int i = 0; i < V; ++i) {
                            const i64 k = (i64)i * blockDim.x + threadIdx.x;
                            v[i] = k < n ? (A)p[k] : KILN_NEG_INF;
                            m = KILN_MAX(m, v[i]);
                        }
                    } else {
                        for (i64 k = threadIdx.x; k < n; k += blockDim.x) m = KILN_MAX(m, (A)p[k]);
                    }
                    m = kiln_block_all(m, red, true);
                    A s = 0;
                    if (V > 0) {
                        #pragma unroll
                        for (int i = 0; i < V; ++i) {
                            if ((i64)i * blockDim.x + threadIdx.x < n) { \(keep) }
                        }
                    } else {
                        for (i64 k = threadIdx.x; k < n; k += blockDim.x) s += KILN_EXP((A)p[k] - m);
                    }
                    s = kiln_block_all(s, red, false);
                    \(finish)
                    if (V > 0) {
                        #pragma unroll
                        for (int i = 0; i < V; ++i) {
                            const i64 k = (i64)i * blockDim.x + threadIdx.x;
                            if (k < n) q[k] = (T)\(write);
                        }
                    } else {
                        for (i64 k = threadIdx.x; k < n; k += blockDim.x) {
                            const A xv = (A)p[k];
                            q[k] = (T)\(direct);
                        }
                    }
                }
            }

            extern "C" __global__ void softmax_columns(
                const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 n, i64 inner) {
                const i64 total = outer * inner;
                for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < total; c += (i64)gridDim.x * blockDim.x) {
                    const i64 o = c / inner;
                    const i64 base = o * n * inner + (c - o * inner);
                    A m = KILN_NEG_INF;
                    for (i64 r = 0; r < n; ++r) m = KILN_MAX(m, (A)x[base + r * inner]);
                    A s = 0;
                    for (i64 r = 0; r < n; ++r) s += KILN_EXP((A)x[base + r * inner] - m);
                    \(finish)
                    for (i64 r = 0; r < n; ++r) {
                        const A xv = (A)x[base + r * inner];
                        y[base + r * inner] = (T)\(direct);
                    }
                }
            }

            """
        for v in warpVariants {
            code += """
                extern "C" __global__ void softmax_warp_\(v)(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
                    softmax_warp<\(v)>(x, y, rows, n);
                }

                """
        }
        for v in [0] + blockVariants {
            code += """
                extern "C" __global__ void softmax_block_\(v)(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
                    softmax_block<\(v)>(x, y, rows, n);
                }

                """
        }
        return CUDASource(name: name, code: code)
    }

    /// Warp and block folds of max and sum (every thread gets the result).
    static let common = """
        /* A function, not a macro: a macro would evaluate a shuffle argument twice, on some lanes only. */
        __device__ __forceinline__ A kiln_max(A a, A b) { return b > a ? b : a; }
        #define KILN_MAX(a, b) kiln_max(a, b)
        __device__ __forceinline__ A kiln_warp_max(A v) {
            /* The shuffle must run on every lane: never inside KILN_MAX, whose ternary evaluates it on some. */
            for (int o = 16; o > 0; o >>= 1) {
                const A other = __shfl_xor_sync(0xffffffffu, v, o);
                v = KILN_MAX(v, other);
            }
            return v;
        }
        __device__ __forceinline__ A kiln_warp_sum(A v) {
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            return v;
        }
        /* Needs blockDim.x a multiple of 32; `red` holds 32 partials. */
        __device__ __forceinline__ A kiln_block_all(A v, A* red, bool isMax) {
            v = isMax ? kiln_warp_max(v) : kiln_warp_sum(v);
            if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
            __syncthreads();
            A r = red[0];
            const int warps = blockDim.x >> 5;
            for (int k = 1; k < warps; ++k) r = isMax ? KILN_MAX(r, red[k]) : r + red[k];
            __syncthreads();
            return r;
        }

        """

    /// Hardmax: 1 at the first maximum of each line, else 0; a NaN first element wins (as on the CPU, whose
    /// scan starts from it and never replaces it), other NaNs never do.
    static let hardmaxKernels = """
        extern "C" __global__ void hardmax_rows(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
            const int lane = threadIdx.x & 31;
            const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
            for (i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
                const T* p = x + row * n;
                A best = (A)p[0];
                i64 at = 0;
                for (i64 k = 1 + lane; k < n; k += 32) {
                    const A v = (A)p[k];
                    if (v > best) { best = v; at = k; }
                }
                for (int o = 16; o > 0; o >>= 1) {
                    const A ob = __shfl_xor_sync(0xffffffffu, best, o);
                    const i64 oa = __shfl_xor_sync(0xffffffffu, at, o);
                    if (ob > best || (ob == best && oa < at)) { best = ob; at = oa; }
                }
                for (i64 k = lane; k < n; k += 32) y[row * n + k] = (T)(k == at ? 1 : 0);
            }
        }

        extern "C" __global__ void hardmax_columns(
            const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 n, i64 inner) {
            const i64 total = outer * inner;
            for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < total; c += (i64)gridDim.x * blockDim.x) {
                const i64 o = c / inner;
                const i64 base = o * n * inner + (c - o * inner);
                A best = (A)x[base];
                i64 at = 0;
                for (i64 r = 1; r < n; ++r) {
                    const A v = (A)x[base + r * inner];
                    if (v > best) { best = v; at = r; }
                }
                for (i64 r = 0; r < n; ++r) y[base + r * inner] = (T)(r == at ? 1 : 0);
            }
        }

        """
}
