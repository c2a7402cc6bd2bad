import KilnIR

/// The fold a reduction kernel runs. Mirrors `ReduceLayer.Op`, plus the NaN-ignoring maximum that max pooling
/// uses (a NaN input never wins there, while ReduceMax propagates it).
enum CUDAReduceOp: String, Sendable, CaseIterable {
    case sum, mean, max, min, prod, l1, l2, logSum, logSumExp, sumSquare
    case maxIgnoringNaN

    init(_ op: ReduceLayer.Op) {
        switch op {
        case .sum: self = .sum
        case .mean: self = .mean
        case .max: self = .max
        case .min: self = .min
        case .prod: self = .prod
        case .l1: self = .l1
        case .l2: self = .l2
        case .logSum: self = .logSum
        case .logSumExp: self = .logSumExp
        case .sumSquare: self = .sumSquare
        }
    }
}

/// CUDA C for the reduce kernels: one module per (op, dtype), with three entry points over the
/// [outer, reduced, inner] view of the input:
/// - `reduce_rows_warp(x, y, rows, n)`: inner == 1, one warp per row (grid-stride over rows);
/// - `reduce_rows_block(x, y, rows, n)`: inner == 1, one block per row, for long rows;
/// - `reduce_columns(x, y, outer, n, inner)`: inner > 1; a 32 x 8 block folds 32 adjacent outputs, each
///   column split over the 8 thread rows, so every load instruction of a warp reads 32 consecutive elements.
enum CUDAReductionSources {
    /// Thread rows of the column kernel's block (its blockDim.y).
    static let columnSplit = 8

    static func reduce(_ op: CUDAReduceOp, _ dtype: DType) throws -> CUDASource {
        let (t, a) = try CUDAReductionTypes.require(dtype, "reduce")
        let code = mathHeader(element: t, accumulator: a) + opStruct(op) + kernels
        return CUDASource(name: "reduce_\(op.rawValue)_\(dtype)", code: code)
    }

    /// Typedefs and type-specific math shared by the family's modules: `T` is the element type, `A` the
    /// accumulator, `KILN_*` the math functions for `A`.
    static func mathHeader(element: String, accumulator: String) -> String {
        let double = accumulator == "double"
        let negInf = double ? "(-__longlong_as_double(0x7ff0000000000000LL))" : "(-__int_as_float(0x7f800000))"
        let f = double ? "" : "f"
        return """
            typedef \(element) T;
            typedef \(accumulator) A;
            #define KILN_NEG_INF \(negInf)
            #define KILN_EXP(v) exp\(f)(v)
            #define KILN_LOG(v) log\(f)(v)
            #define KILN_SQRT(v) sqrt\(f)(v)
            #define KILN_ABS(v) fabs\(f)(v)
            #define KILN_POW(v, p) pow\(f)(v, p)

            """
    }

    /// `struct Op` with the state type `S` and `init`, `load`, `combine`, `shfl` (a warp shuffle of a state)
    /// and `finalize(state, count)`.
    static func opStruct(_ op: CUDAReduceOp) -> String {
        if op == .logSumExp {
            // Online (max, sum of exp(x - max)) pairs: one pass over the data, exact in exact arithmetic.
            return """
                struct Op {
                    struct S { A m; A s; };
                    static __device__ __forceinline__ S init() { S r; r.m = KILN_NEG_INF; r.s = 0; return r; }
                    static __device__ __forceinline__ S load(A v) { S r; r.m = v; r.s = 1; return r; }
                    static __device__ __forceinline__ S combine(S a, S b) {
                        S r;
                        r.m = (b.m > a.m || isnan(b.m)) ? b.m : a.m;
                        /* Equal maxima (also both -inf) add unscaled: exp(-inf - -inf) would be NaN. */
                        A sa = a.m == r.m ? a.s : a.s * KILN_EXP(a.m - r.m);
                        A sb = b.m == r.m ? b.s : b.s * KILN_EXP(b.m - r.m);
                        r.s = sa + sb;
                        return r;
                    }
                    static __device__ __forceinline__ S shfl(S v, int offset) {
                        S r;
                        r.m = __shfl_xor_sync(0xffffffffu, v.m, offset);
                        r.s = __shfl_xor_sync(0xffffffffu, v.s, offset);
                        return r;
                    }
                    static __device__ __forceinline__ A finalize(S v, i64 n) {
                        if (isnan(v.m) || isinf(v.m)) return v.m;
                        return v.m + KILN_LOG(v.s);
                    }
                };

                """
        }
        var initial = "0"
        var load = "v"
        var combine = "a + b"
        var finalize = "v"
        switch op {
        case .sum: break
        case .mean: finalize = "v / (A)n"
        case .l1: load = "KILN_ABS(v)"
        case .sumSquare: load = "v * v"
        case .l2: (load, finalize) = ("v * v", "KILN_SQRT(v)")
        case .logSum: finalize = "KILN_LOG(v)"
        case .prod: (initial, combine) = ("1", "a * b")
        case .max: (initial, combine) = ("KILN_NEG_INF", "(b > a || isnan(b)) ? b : a")
        case .min: (initial, combine) = ("-KILN_NEG_INF", "(b < a || isnan(b)) ? b : a")
        case .maxIgnoringNaN:
            (initial, load, combine) = ("KILN_NEG_INF", "isnan(v) ? KILN_NEG_INF : v", "b > a ? b : a")
        case .logSumExp: break
        }
        return """
            struct Op {
                typedef A S;
                static __device__ __forceinline__ S init() { return \(initial); }
                static __device__ __forceinline__ S load(A v) { return \(load); }
                static __device__ __forceinline__ S combine(S a, S b) { return \(combine); }
                static __device__ __forceinline__ S shfl(S v, int offset) {
                    return __shfl_xor_sync(0xffffffffu, v, offset);
                }
                static __device__ __forceinline__ A finalize(S v, i64 n) { return \(finalize); }
            };

            """
    }

    private static let kernels = """
        __device__ __forceinline__ Op::S kiln_warp_fold(Op::S v) {
            for (int offset = 16; offset > 0; offset >>= 1) v = Op::combine(v, Op::shfl(v, offset));
            return v;
        }

        extern "C" __global__ void reduce_rows_warp(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
            const int lane = threadIdx.x & 31;
            const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
            for (i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
                const T* p = x + row * n;
                Op::S s = Op::init();
                for (i64 i = lane; i < n; i += 32) s = Op::combine(s, Op::load((A)p[i]));
                s = kiln_warp_fold(s);
                if (lane == 0) y[row] = (T)Op::finalize(s, n);
            }
        }

        extern "C" __global__ void reduce_rows_block(const T* __restrict__ x, T* __restrict__ y, i64 rows, i64 n) {
            __shared__ Op::S partial[32];
            const int lane = threadIdx.x & 31;
            const int warp = threadIdx.x >> 5;
            const int warps = (blockDim.x + 31) >> 5;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                const T* p = x + row * n;
                Op::S s = Op::init();
                for (i64 i = threadIdx.x; i < n; i += blockDim.x) s = Op::combine(s, Op::load((A)p[i]));
                s = kiln_warp_fold(s);
                if (lane == 0) partial[warp] = s;
                __syncthreads();
                if (warp == 0) {
                    s = lane < warps ? partial[lane] : Op::init();
                    s = kiln_warp_fold(s);
                    if (lane == 0) y[row] = (T)Op::finalize(s, n);
                }
                __syncthreads();
            }
        }

        #define KILN_SPLIT 8
        extern "C" __global__ void reduce_columns(
            const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 n, i64 inner) {
            __shared__ Op::S partial[KILN_SPLIT][33];
            const i64 total = outer * inner;
            for (i64 tile = blockIdx.x; tile * 32 < total; tile += gridDim.x) {
                const i64 q = tile * 32 + threadIdx.x;
                Op::S s = Op::init();
                if (q < total) {
                    const i64 o = q / inner;
                    const T* p = x + o * n * inner + (q - o * inner);
                    for (i64 r = threadIdx.y; r < n; r += KILN_SPLIT) s = Op::combine(s, Op::load((A)p[r * inner]));
                }
                partial[threadIdx.y][threadIdx.x] = s;
                __syncthreads();
                if (threadIdx.y == 0) {
                    for (int k = 1; k < KILN_SPLIT; ++k) s = Op::combine(s, partial[k][threadIdx.x]);
                    if (q < total) y[q] = (T)Op::finalize(s, n);
                }
                __syncthreads();
            }
        }

        """
}
