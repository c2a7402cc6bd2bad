import KilnIR

/// The epilogue kernel that follows a cuBLASLt or cuDNN step when the library cannot finish the job exactly:
/// `y[i] = activation(y[i] + beta * c[offset(i)])`, in place on the step's output. One module holds one function
/// per activation (so the activation is compiled in); the addend's kind is a uniform run-time switch.
enum CUDALinearAlgebraEpilogue {
    /// What is added before the activation.
    enum Addend: Equatable {
        case none
        /// `c` has the output's shape.
        case full(CUDAOperand, beta: Float)
        /// `c` has `length` elements repeated along the last axis (offset = i % length).
        case row(CUDAOperand, length: Int, beta: Float)
        /// Any broadcast: `sizes` (row-major, collapsed) and `c`'s strides on each, 0 where broadcast.
        case broadcast(CUDAOperand, sizes: [Int], strides: [Int], beta: Float)
    }

    static let threadsPerBlock = 256
    /// Enough blocks for many waves on 132 SMs; the grid-stride loop covers the rest.
    static let maxBlocks = 8192

    /// The kernel function for `activation` (nil: only the add) on `dtype` elements.
    static func functionName(_ activation: EpilogueActivation?, dtype: DType = .float32) -> String {
        let suffix: String
        switch activation {
        case nil: suffix = "none"
        case .relu?: suffix = "relu"
        case .clip?: suffix = "clip"
        case .leakyRelu?: suffix = "leaky_relu"
        case .sigmoid?: suffix = "sigmoid"
        case .tanh?: suffix = "tanh"
        case .gelu(let approximate)?: suffix = approximate ? "gelu_tanh" : "gelu_erf"
        case .silu?: suffix = "silu"
        }
        return "kiln_linalg_epilogue_\(dtype)_" + suffix
    }

    /// The activation's two float parameters (clip bounds, leaky slope); unused ones are 0.
    static func parameters(_ activation: EpilogueActivation?) -> (Float, Float) {
        switch activation {
        case .clip(let low, let high)?: return (low ?? -.infinity, high ?? .infinity)
        case .leakyRelu(let alpha)?: return (alpha, 0)
        default: return (0, 0)
        }
    }

    /// A launch applying `addend` and `activation` to the `count` elements of `output` (float32, float16 or
    /// bfloat16, as `c`).
    static func launch(
        output: CUDAOperand, count: Int, addend: Addend, activation: EpilogueActivation?, dtype: DType = .float32
    ) throws -> CUDALaunch {
        guard [.float32, .float16, .bfloat16].contains(dtype) else {
            throw KilnError.unsupported("the product epilogue has no \(dtype.onnxName) kernel")
        }
        var mode: Int32 = 0
        var c: CUDAOperand = output
        var beta: Float = 0
        var rowLength = 1
        var sizes: [Int] = []
        var strides: [Int] = []
        switch addend {
        case .none:
            break
        case .full(let operand, let b):
            (mode, c, beta) = (1, operand, b)
        case .row(let operand, let length, let b):
            guard length > 0 else { throw KilnError.invalidArgument("epilogue row length must be positive") }
            (mode, c, beta, rowLength) = (2, operand, b, length)
        case .broadcast(let operand, let s, let t, let b):
            guard s.count == t.count, s.count <= CUDAPrelude.maxRank else {
                throw KilnError.unsupported("epilogue broadcast of rank \(s.count) (at most \(CUDAPrelude.maxRank))")
            }
            (mode, c, beta, sizes, strides) = (3, operand, b, s, t)
        }
        let vectorized = count % 4 == 0 && (mode <= 1 || (mode == 2 && rowLength % 4 == 0))
        let work = vectorized ? count / 4 : count
        let blocks = max(1, min((work + threadsPerBlock - 1) / threadsPerBlock, maxBlocks))
        let (p0, p1) = parameters(activation)
        return CUDALaunch(
            source: source(dtype), function: functionName(activation, dtype: dtype), grid: CUDADim3(blocks),
            block: CUDADim3(threadsPerBlock),
            arguments: [
                .pointer(output), .pointer(c), .int64(Int64(count)), .int32(mode), .float32(beta),
                .int64(Int64(rowLength)), .dims(sizes), .dims(strides), .int32(Int32(sizes.count)),
                .float32(p0), .float32(p1),
            ])
    }

    /// Merges adjacent axes that are contiguous in both the output and `c` (equal strides count as contiguous
    /// only when both are 0 or `c` is dense across them), so most broadcasts fit in a few dims.
    static func collapse(sizes: [Int], strides: [Int]) -> (sizes: [Int], strides: [Int]) {
        var outSizes: [Int] = []
        var outStrides: [Int] = []
        for (size, stride) in zip(sizes, strides) where size != 1 {
            if let lastSize = outSizes.last, let lastStride = outStrides.last, lastStride == stride * size {
                outSizes[outSizes.count - 1] = lastSize * size
                outStrides[outStrides.count - 1] = stride
            } else {
                outSizes.append(size)
                outStrides.append(stride)
            }
        }
        return (outSizes, outStrides)
    }

    /// The module of every activation's kernel on `dtype` elements.
    static func source(_ dtype: DType) -> CUDASource { CUDAPrelude.specialized("linalg_epilogue", code, dtype: dtype) }

    /// The activations, `kiln_linalg_act<ACT>(x, p0, p1)` with ACT the index `activationIndex` gives; shared by
    /// the kernels that finish a convolution or product.
    static let activationCode = """
        /* Same formulas as the CPU reference (GemmEpilogue.activate): sigmoid split by sign so exp never
           overflows; clip clamps below first so min > max gives max; NaN passes through relu. */
        __device__ __forceinline__ float kiln_linalg_sigmoid(float x) {
            if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
            float e = expf(x);
            return e / (1.0f + e);
        }

        template <int ACT>
        __device__ __forceinline__ float kiln_linalg_act(float x, float p0, float p1) {
            if (ACT == 1) return x < 0.0f ? 0.0f : x;
            if (ACT == 2) { float y = x < p0 ? p0 : x; return y > p1 ? p1 : y; }
            if (ACT == 3) return x < 0.0f ? x * p0 : x;
            if (ACT == 4) return kiln_linalg_sigmoid(x);
            if (ACT == 5) return tanhf(x);
            if (ACT == 6) return kiln_gelu_erf(x);
            if (ACT == 7) return kiln_gelu_tanh(x);
            if (ACT == 8) return x * kiln_linalg_sigmoid(x);
            return x;
        }

        """

    /// The ACT template argument of `kiln_linalg_act` for an activation (0: none).
    static func activationIndex(_ activation: EpilogueActivation?) -> Int {
        switch activation {
        case nil: 0
        case .relu?: 1
        case .clip?: 2
        case .leakyRelu?: 3
        case .sigmoid?: 4
        case .tanh?: 5
        case .gelu(let approximate)?: approximate ? 7 : 6
        case .silu?: 8
        }
    }

    private static let code =
        activationCode + """
            /* mode 0: y = act(y); 1: c has y's shape; 2: c repeats along the last axis (i % rowLength);
               3: general broadcast through sizes/strides. */
            typedef KILN_T T;
            struct __align__(sizeof(T) * 4) KilnQuad { T x, y, z, w; };
            template <int ACT>
            __device__ __forceinline__ void kiln_linalg_epilogue(
                T* __restrict__ y, const T* __restrict__ c, i64 count, int mode, float beta, i64 rowLength,
                const KilnDims& sizes, const KilnDims& strides, int rank, float p0, float p1)
            {
                const i64 step = (i64)gridDim.x * blockDim.x;
                const i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x;
                const bool vectorized =
                    (count & 3) == 0 && (mode <= 1 || (mode == 2 && (rowLength & 3) == 0));
                if (vectorized) {
                    KilnQuad* y4 = reinterpret_cast<KilnQuad*>(y);
                    const i64 count4 = count >> 2;
                    for (i64 i = first; i < count4; i += step) {
                        const KilnQuad q = y4[i];
                        float4 v = make_float4(q.x, q.y, q.z, q.w);
                        if (mode != 0) {
                            const i64 at = mode == 1 ? (i << 2) : ((i << 2) % rowLength);
                            const KilnQuad a = *reinterpret_cast<const KilnQuad*>(c + at);
                            v.x += beta * (float)a.x; v.y += beta * (float)a.y;
                            v.z += beta * (float)a.z; v.w += beta * (float)a.w;
                        }
                        KilnQuad r;
                        r.x = kiln_linalg_act<ACT>(v.x, p0, p1);
                        r.y = kiln_linalg_act<ACT>(v.y, p0, p1);
                        r.z = kiln_linalg_act<ACT>(v.z, p0, p1);
                        r.w = kiln_linalg_act<ACT>(v.w, p0, p1);
                        y4[i] = r;
                    }
                    return;
                }
                for (i64 i = first; i < count; i += step) {
                    float v = y[i];
                    if (mode == 1) {
                        v += beta * (float)c[i];
                    } else if (mode == 2) {
                        v += beta * (float)c[i % rowLength];
                    } else if (mode == 3) {
                        i64 rest = i, offset = 0;
                        for (int d = rank - 1; d >= 0; --d) {
                            const i64 size = sizes.v[d];
                            offset += (rest % size) * strides.v[d];
                            rest /= size;
                        }
                        v += beta * (float)c[offset];
                    }
                    y[i] = kiln_linalg_act<ACT>(v, p0, p1);
                }
            }

            #define KILN_LINALG_EPILOGUE(NAME, ACT) \\
                extern "C" __global__ void kiln_linalg_epilogue_KILN_NAME_##NAME( \\
                    T* __restrict__ y, const T* __restrict__ c, i64 count, int mode, float beta, \\
                    i64 rowLength, KilnDims sizes, KilnDims strides, int rank, float p0, float p1) \\
                { kiln_linalg_epilogue<ACT>(y, c, count, mode, beta, rowLength, sizes, strides, rank, p0, p1); }

            KILN_LINALG_EPILOGUE(none, 0)
            KILN_LINALG_EPILOGUE(relu, 1)
            KILN_LINALG_EPILOGUE(clip, 2)
            KILN_LINALG_EPILOGUE(leaky_relu, 3)
            KILN_LINALG_EPILOGUE(sigmoid, 4)
            KILN_LINALG_EPILOGUE(tanh, 5)
            KILN_LINALG_EPILOGUE(gelu_erf, 6)
            KILN_LINALG_EPILOGUE(gelu_tanh, 7)
            KILN_LINALG_EPILOGUE(silu, 8)

            """
}
