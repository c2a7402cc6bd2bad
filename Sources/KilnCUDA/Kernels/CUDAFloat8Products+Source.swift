import KilnIR

/// The CUDA C of the float8 E4M3 kernels: rounding to E4M3 bytes (plain, NHWC and padded rows) and back, the
/// finish of cuBLASLt's float32 sums, and the direct kernels. The conversions are plain arithmetic (no FP8
/// instructions), so quantize and dequantize layers run on any device; rounding is to nearest even and
/// saturates at ±448, NaN staying NaN, as ONNX QuantizeLinear defines it.
extension CUDAFloat8Products {
    static let source = CUDASource(name: "float8_products", code: code)

    static let code =
        CUDALinearAlgebraEpilogue.activationCode + CUDAQuantizedProducts.sharedCode + """
            /* x rounded to an E4M3 byte. Below 2^-6 the numbers are steps of 2^-9 (eight steps make 2^-6, the
               first normal byte 0x08); above, a / 2^(e-3) is a whole number of eighths of 2^e in [8, 16]. */
            __device__ __forceinline__ unsigned kiln_e4m3(float x) {
                const unsigned sign = (__float_as_uint(x) >> 24) & 0x80u;
                float a = fabsf(x);
                if (isnan(a)) return sign | 0x7Fu;
                a = fminf(a, 448.0f);
                if (a < 0.015625f) return sign | (unsigned)rintf(__fmul_rn(a, 512.0f));
                int e = (int)((__float_as_uint(a) >> 23) & 0xFFu) - 127;
                unsigned steps = (unsigned)rintf(__fmul_rn(a, __uint_as_float((unsigned)(130 - e) << 23)));
                if (steps == 16u) { steps = 8u; ++e; }
                return sign | (unsigned)(e + 7) << 3 | (steps - 8u);
            }

            /* The number an E4M3 byte stands for (0x7F and 0xFF are NaN). */
            __device__ __forceinline__ float kiln_e4m3_value(unsigned b) {
                const unsigned m = b & 0x7Fu;
                const float v = m == 0x7Fu ? __uint_as_float(0x7FC00000u)
                    : m < 8u ? __fmul_rn((float)m, 0.001953125f)
                    : __uint_as_float(((m >> 3) + 120u) << 23 | (m & 7u) << 20);
                return (b & 0x80u) ? -v : v;
            }

            __device__ __forceinline__ unsigned char kiln_f8(float x, float scale) {
                return (unsigned char)kiln_e4m3(__fdiv_rn(x, scale));
            }

            /* kiln_quantize_f8 reads float, kiln_quantize_f8_f16 float16, ...; kiln_dequantize_f8* write them. */
            #define KILN_FLOAT8(F, FNAME) \\
                extern "C" __global__ void kiln_quantize_f8##FNAME( \\
                    const F* __restrict__ x, unsigned char* __restrict__ q, i64 n, float scale) \\
                { \\
                    const i64 step = (i64)gridDim.x * blockDim.x; \\
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) \\
                        q[i] = kiln_f8((float)x[i], scale); \\
                } \\
                extern "C" __global__ void kiln_dequantize_f8##FNAME( \\
                    const unsigned char* __restrict__ q, F* __restrict__ x, i64 n, float scale) \\
                { \\
                    const i64 step = (i64)gridDim.x * blockDim.x; \\
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) \\
                        x[i] = F(__fmul_rn(kiln_e4m3_value(q[i]), scale)); \\
                }
            KILN_FLOAT8(float, )
            KILN_FLOAT8(kiln_half, _f16)
            KILN_FLOAT8(kiln_bf16, _bf16)

            /* x [N, C, HW] float -> q [N, HW, C] E4M3 (block 32x8; grid (HW/32, C/32, N)); a [rows, K] ->
               q [rows, Kp] E4M3, zeros past K. */
            extern "C" __global__ void kiln_f8_nhwc(
                const float* __restrict__ x, unsigned char* __restrict__ q, i64 C, i64 HW, float scale)
            {
                kiln_bytes_nhwc(x, q, C, HW, [=](float v) { return kiln_f8(v, scale); });
            }

            extern "C" __global__ void kiln_f8_rows(
                const float* __restrict__ a, unsigned char* __restrict__ q, i64 rows, i64 K, i64 Kp, float scale)
            {
                kiln_bytes_rows(a, q, rows, K, Kp, [=](float v) { return kiln_f8(v, scale); });
            }

            /* The float tail of every float8 output: scale, bias, residual, activation, and with oscale > 0 the
               round trip through E4M3. Each step rounded on its own, as the CPU computes it. */
            template <int ACT>
            __device__ __forceinline__ float kiln_f8_finish(
                float acc, float scale, float bias, float residual, float p0, float p1, float oscale)
            {
                float v = __fadd_rn(__fmul_rn(acc, scale), bias);
                v = __fadd_rn(v, residual);
                v = kiln_linalg_act<ACT>(v, p0, p1);
                return oscale > 0.0f ? __fmul_rn(kiln_e4m3_value(kiln_f8(v, oscale)), oscale) : v;
            }

            #define KILN_F8_TAIL_PARAMETERS \\
                const float* __restrict__ wscale, const float* __restrict__ bias, const float* __restrict__ residual, \\
                float* __restrict__ y
            #define KILN_F8_TAIL_SCALARS float xscale, int hasBias, int hasResidual, float p0, float p1, float oscale
            #define KILN_F8_FINISH1(ACT, ACC, CHANNEL) \\
                y[i] = kiln_f8_finish<ACT>(ACC, __fmul_rn(wscale[CHANNEL], xscale), hasBias ? bias[CHANNEL] : 0.0f, \\
                    hasResidual ? residual[i] : 0.0f, p0, p1, oscale)

            /* d [N][M][Pp] float32 sums (cuBLASLt's D per image) -> y [N, M, P]. */
            template <int ACT>
            __device__ __forceinline__ void kiln_f8_finish_conv(
                const float* __restrict__ d, KILN_F8_TAIL_PARAMETERS, i64 total, i64 M, i64 P, i64 Pp,
                KILN_F8_TAIL_SCALARS)
            {
                const i64 step = (i64)gridDim.x * blockDim.x;
                for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const i64 pix = i % P, plane = i / P, m = plane % M;
                    KILN_F8_FINISH1(ACT, d[plane * Pp + pix], m);
                }
            }

            /* d [rows][Np] -> y [rows, N]. */
            template <int ACT>
            __device__ __forceinline__ void kiln_f8_finish_rows(
                const float* __restrict__ d, KILN_F8_TAIL_PARAMETERS, i64 total, i64 N, i64 Np, KILN_F8_TAIL_SCALARS)
            {
                const i64 step = (i64)gridDim.x * blockDim.x;
                for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const i64 j = i % N;
                    KILN_F8_FINISH1(ACT, d[(i / N) * Np + j], j);
                }
            }

            /* The products of two E4M3 numbers are exact in float32. */
            template <int ACT>
            __device__ __forceinline__ void kiln_conv2d_f8(
                const unsigned char* __restrict__ q, const unsigned char* __restrict__ w, KILN_F8_TAIL_PARAMETERS,
                const KilnDims& size, const KilnDims& window, int group, KILN_F8_TAIL_SCALARS)
            {
                kiln_conv2d_direct(q, w, size, window, group, 0.0f,
                    [](float acc, unsigned char x, unsigned char k) {
                        return __fadd_rn(acc, __fmul_rn(kiln_e4m3_value(k), kiln_e4m3_value(x)));
                    },
                    [=](i64 i, i64 m, float acc) { KILN_F8_FINISH1(ACT, acc, m); });
            }

            /* q: A as E4M3 bytes [rows, K]; b [N, K]. One thread per output. */
            template <int ACT>
            __device__ __forceinline__ void kiln_matmul_f8(
                const unsigned char* __restrict__ q, const unsigned char* __restrict__ b, KILN_F8_TAIL_PARAMETERS,
                i64 rows, i64 N, i64 K, KILN_F8_TAIL_SCALARS)
            {
                const i64 total = rows * N;
                const i64 step = (i64)gridDim.x * blockDim.x;
                for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const i64 n = i % N;
                    const unsigned char* a = q + (i / N) * K;
                    const unsigned char* bn = b + n * K;
                    float acc = 0.0f;
                    for (i64 k = 0; k < K; ++k)
                        acc = __fadd_rn(acc, __fmul_rn(kiln_e4m3_value(bn[k]), kiln_e4m3_value(a[k])));
                    KILN_F8_FINISH1(ACT, acc, n);
                }
            }

            #define KILN_F8_PRODUCTS(ACT) \\
                extern "C" __global__ void kiln_f8_finish_conv_act##ACT( \\
                    const float* __restrict__ d, KILN_F8_TAIL_PARAMETERS, i64 total, i64 M, i64 P, i64 Pp, \\
                    KILN_F8_TAIL_SCALARS) \\
                { kiln_f8_finish_conv<ACT>(d, wscale, bias, residual, y, total, M, P, Pp, xscale, hasBias, \\
                    hasResidual, p0, p1, oscale); } \\
                extern "C" __global__ void kiln_f8_finish_rows_act##ACT( \\
                    const float* __restrict__ d, KILN_F8_TAIL_PARAMETERS, i64 total, i64 N, i64 Np, KILN_F8_TAIL_SCALARS) \\
                { kiln_f8_finish_rows<ACT>(d, wscale, bias, residual, y, total, N, Np, xscale, hasBias, hasResidual, \\
                    p0, p1, oscale); } \\
                extern "C" __global__ void kiln_conv2d_f8_act##ACT( \\
                    const unsigned char* __restrict__ q, const unsigned char* __restrict__ w, KILN_F8_TAIL_PARAMETERS, \\
                    KilnDims size, KilnDims window, int group, KILN_F8_TAIL_SCALARS) \\
                { kiln_conv2d_f8<ACT>(q, w, wscale, bias, residual, y, size, window, group, xscale, hasBias, \\
                    hasResidual, p0, p1, oscale); } \\
                extern "C" __global__ void kiln_matmul_f8_act##ACT( \\
                    const unsigned char* __restrict__ q, const unsigned char* __restrict__ b, KILN_F8_TAIL_PARAMETERS, \\
                    i64 rows, i64 N, i64 K, KILN_F8_TAIL_SCALARS) \\
                { kiln_matmul_f8<ACT>(q, b, wscale, bias, residual, y, rows, N, K, xscale, hasBias, hasResidual, \\
                    p0, p1, oscale); }

            KILN_F8_PRODUCTS(0)
            KILN_F8_PRODUCTS(1)
            KILN_F8_PRODUCTS(2)
            KILN_F8_PRODUCTS(3)
            KILN_F8_PRODUCTS(4)
            KILN_F8_PRODUCTS(5)
            KILN_F8_PRODUCTS(6)
            KILN_F8_PRODUCTS(7)
            KILN_F8_PRODUCTS(8)

            """
}
