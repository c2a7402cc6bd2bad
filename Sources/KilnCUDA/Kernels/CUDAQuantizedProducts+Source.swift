import KilnIR

/// The CUDA C of the int8 kernels: quantization into bytes (plain and NHWC), patches, the cuBLASLt finish, and
/// the direct kernels for grouped convolutions and non-constant weights.
extension CUDAQuantizedProducts {
    static let source = CUDASource(name: "int8_products", code: code)

    static let code =
        CUDALinearAlgebraEpilogue.activationCode + sharedCode + """
            __device__ __forceinline__ unsigned kiln_quantize1(float x, float scale, int zp, int lo, int hi) {
                float r = __fadd_rn(rintf(__fdiv_rn(x, scale)), (float)zp);
                r = isnan(r) ? 0.0f : fminf(fmaxf(r, (float)lo), (float)hi);
                return (unsigned)(int)r & 0xFFu;
            }

            /* Four values a vector (one 16-byte or 8-byte load, one 4-byte store) where both pointers allow, four
               vectors a thread's loads in flight at once, then the rest one at a time. F: float or a 16-bit float,
               widened before the division. */
            template <typename F> struct __align__(4 * sizeof(F)) kiln_four { F v[4]; };

            template <typename F, typename Q>
            __device__ __forceinline__ void kiln_quantize(
                const F* __restrict__ x, Q* __restrict__ q, i64 n, float scale, int zp, int lo, int hi)
            {
                const i64 step = (i64)gridDim.x * blockDim.x, first = (i64)blockIdx.x * blockDim.x + threadIdx.x;
                const i64 vectors = (((u64)x & (4 * sizeof(F) - 1)) == 0 && ((u64)q & 3) == 0) ? n / 4 : 0;
                for (i64 v = first; v < vectors; v += 4 * step) {
                    kiln_four<F> f[4];
                    #pragma unroll
                    for (int u = 0; u < 4; ++u)
                        if (v + u * step < vectors) f[u] = reinterpret_cast<const kiln_four<F>*>(x)[v + u * step];
                    #pragma unroll
                    for (int u = 0; u < 4; ++u) {
                        if (v + u * step >= vectors) break;
                        reinterpret_cast<unsigned*>(q)[v + u * step] =
                            kiln_quantize1((float)f[u].v[0], scale, zp, lo, hi)
                            | kiln_quantize1((float)f[u].v[1], scale, zp, lo, hi) << 8
                            | kiln_quantize1((float)f[u].v[2], scale, zp, lo, hi) << 16
                            | kiln_quantize1((float)f[u].v[3], scale, zp, lo, hi) << 24;
                    }
                }
                for (i64 i = 4 * vectors + first; i < n; i += step)
                    q[i] = (Q)kiln_quantize1((float)x[i], scale, zp, lo, hi);
            }

            template <typename Q, typename F>
            __device__ __forceinline__ void kiln_dequantize(
                const Q* __restrict__ q, F* __restrict__ x, i64 n, float scale, int zp)
            {
                const i64 step = (i64)gridDim.x * blockDim.x;
                for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
                    x[i] = F(__fmul_rn((float)((int)q[i] - zp), scale));
            }

            /* kiln_quantize_i8 reads float, kiln_quantize_i8_f16 float16, ...; kiln_dequantize_i8 writes float,
               kiln_dequantize_i8_f16 float16, ... */
            #define KILN_QUANTIZE(F, FNAME, Q, QNAME) \
                extern "C" __global__ void kiln_quantize_##QNAME##FNAME( \
                    const F* __restrict__ x, Q* __restrict__ q, i64 n, float scale, int zp, int lo, int hi) \
                { kiln_quantize<F, Q>(x, q, n, scale, zp, lo, hi); } \
                extern "C" __global__ void kiln_dequantize_##QNAME##FNAME( \
                    const Q* __restrict__ q, F* __restrict__ x, i64 n, float scale, int zp) \
                { kiln_dequantize<Q, F>(q, x, n, scale, zp); }
            #define KILN_QUANTIZE_ALL(F, FNAME) \
                KILN_QUANTIZE(F, FNAME, signed char, i8) KILN_QUANTIZE(F, FNAME, unsigned char, u8)
            KILN_QUANTIZE_ALL(float, )
            KILN_QUANTIZE_ALL(kiln_half, _f16)
            KILN_QUANTIZE_ALL(kiln_bf16, _bf16)

            /* The float tail of every int8 output: dequantize, bias, residual, activation, requantize. */
            template <int ACT>
            __device__ __forceinline__ float kiln_int8_finish(
                int acc, float scale, float bias, float residual, float p0, float p1,
                int hasOut, float oscale, int ozp, int olo, int ohi)
            {
                float v = __fadd_rn(__fmul_rn((float)acc, scale), bias);
                v = __fadd_rn(v, residual);
                v = kiln_linalg_act<ACT>(v, p0, p1);
                if (hasOut) {
                    float r = __fadd_rn(rintf(__fdiv_rn(v, oscale)), (float)ozp);
                    v = __fmul_rn(__fadd_rn(isnan(r) ? 0.0f : fminf(fmaxf(r, (float)olo), (float)ohi), -(float)ozp), oscale);
                }
                return v;
            }

            template <typename Q, int ACT>
            __device__ __forceinline__ void kiln_conv2d_int8(
                const Q* __restrict__ q, const signed char* __restrict__ w, const float* __restrict__ wscale,
                const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
                const KilnDims& size, const KilnDims& window, int group, int zp, float xscale, int hasBias,
                int hasResidual, float p0, float p1, int hasOut, float oscale, int ozp, int olo, int ohi)
            {
                kiln_conv2d_direct(q, w, size, window, group, 0,
                    [=](int acc, Q x, signed char k) { return acc + (int)k * ((int)x - zp); },
                    [=](i64 i, i64 m, int acc) {
                        y[i] = kiln_int8_finish<ACT>(
                            acc, __fmul_rn(wscale[m], xscale), hasBias ? bias[m] : 0.0f,
                            hasResidual ? residual[i] : 0.0f, p0, p1, hasOut, oscale, ozp, olo, ohi);
                    });
            }

            /* A [rows, K] quantized, B [N, K] int8; one thread per output. */
            template <typename Q, int ACT>
            __device__ __forceinline__ void kiln_matmul_int8(
                const Q* __restrict__ q, const signed char* __restrict__ b, const float* __restrict__ wscale,
                const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
                i64 rows, i64 N, i64 K, int zp, float xscale, int hasBias, int hasResidual, float p0, float p1,
                int hasOut, float oscale, int ozp, int olo, int ohi)
            {
                const i64 total = rows * N;
                const i64 step = (i64)gridDim.x * blockDim.x;
                for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const i64 n = i % N;
                    const Q* a = q + (i / N) * K;
                    const signed char* bn = b + n * K;
                    int acc = 0;
                    for (i64 k = 0; k < K; ++k) acc += (int)bn[k] * ((int)a[k] - zp);
                    y[i] = kiln_int8_finish<ACT>(
                        acc, __fmul_rn(wscale[n], xscale), hasBias ? bias[n] : 0.0f, hasResidual ? residual[i] : 0.0f,
                        p0, p1, hasOut, oscale, ozp, olo, ohi);
                }
            }

            __device__ __forceinline__ int kiln_int8_quant(float x, float scale, int zp, int lo, int hi) {
                float r = __fadd_rn(rintf(__fdiv_rn(x, scale)), (float)zp);
                return isnan(r) ? 0 : (int)fminf(fmaxf(r, (float)lo), (float)hi);
            }

            /* x [N, C, HW] float -> q [N, HW, C] int8 (q - offset). */
            extern "C" __global__ void kiln_int8_nhwc(
                const float* __restrict__ x, signed char* __restrict__ q, i64 C, i64 HW, float scale, int zp, int lo,
                int hi, int offset)
            {
                kiln_bytes_nhwc(x, reinterpret_cast<unsigned char*>(q), C, HW,
                    [=](float v) { return (unsigned char)(kiln_int8_quant(v, scale, zp, lo, hi) - offset); });
            }

            /* size: N, C, H, W, OH, OW, Pp, Kp; window: KH, KW, SH, SW, PH, PW, DH, DW. From q [N, H, W, C], cols
               [N][Pp][Kp] holds the patch of each pixel as (kh, kw, c), channels innermost; a padded pixel reads
               `pad` (zp - offset); rows and columns past P and K are zero. */
            template <typename IX>
            __device__ __forceinline__ void kiln_int8_patches1(
                const signed char* __restrict__ q, signed char* __restrict__ cols, const KilnDims& size,
                const KilnDims& window, int pad)
            {
                const IX C = (IX)size.v[1], H = (IX)size.v[2], W = (IX)size.v[3], OW = (IX)size.v[5];
                const IX Pp = (IX)size.v[6], Kp = (IX)size.v[7];
                const int KH = (int)window.v[0], KW = (int)window.v[1], SH = (int)window.v[2], SW = (int)window.v[3];
                const int PH = (int)window.v[4], PW = (int)window.v[5], DH = (int)window.v[6], DW = (int)window.v[7];
                const IX P = (IX)size.v[4] * OW, K = C * (IX)(KH * KW);
                const IX total = (IX)size.v[0] * Pp * Kp;
                const IX step = (IX)gridDim.x * blockDim.x;
                for (IX i = (IX)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const IX k = i % Kp;
                    const IX row = i / Kp;
                    const IX pix = row % Pp;
                    const IX n = row / Pp;
                    signed char v = 0;
                    if (k < K && pix < P) {
                        const IX c = k % C;
                        const int r = (int)(k / C);
                        const int ih = (int)(pix / OW) * SH - PH + (r / KW) * DH;
                        const int iw = (int)(pix % OW) * SW - PW + (r % KW) * DW;
                        v = (ih < 0 || ih >= (int)H || iw < 0 || iw >= (int)W)
                            ? (signed char)pad
                            : q[((n * H + (IX)ih) * W + (IX)iw) * C + c];
                    }
                    cols[i] = v;
                }
            }

            /* The same patches, staged: a block writes the rows of `tile` neighbouring pixels of one output row.
               First the KH input rows they read ([KH][span][C], bytes outside the image `pad`) and each patch
               byte's offset in them (-1 past K) go to shared memory; then each thread assembles whole 32-byte
               sectors of a row into a shared copy of the block's rows (a warp's threads the same sector of
               neighbouring pixels: their reads SW*C bytes apart, the offsets one broadcast; rows Kp + 16 bytes
               apart, so the 16-byte stores miss no bank), and last the block copies its rows out as one run of
               16-byte chunks, whole lines a warp. Kp a multiple of 32; rows past P are not written. */
            extern "C" __global__ void kiln_int8_patches_staged(
                const signed char* __restrict__ q, signed char* __restrict__ cols, KilnDims size, KilnDims window,
                int pad, int tile)
            {
                extern __shared__ int4 kiln_stage[];
                const int C = (int)size.v[1], H = (int)size.v[2], W = (int)size.v[3];
                const int OH = (int)size.v[4], OW = (int)size.v[5], Kp = (int)size.v[7];
                const int KH = (int)window.v[0], KW = (int)window.v[1], SH = (int)window.v[2], SW = (int)window.v[3];
                const int PH = (int)window.v[4], PW = (int)window.v[5], DH = (int)window.v[6], DW = (int)window.v[7];
                const int K = C * KH * KW, tiles = (OW + tile - 1) / tile;
                const i64 line = (i64)blockIdx.x / tiles;
                const int oh = (int)(line % OH), ow0 = (int)((i64)blockIdx.x - line * tiles) * tile;
                const i64 n = line / OH;
                const int pixels = min(tile, OW - ow0), span = (pixels - 1) * SW + (KW - 1) * DW + 1;
                const int runBytes = span * C, pitch = Kp + 16;
                int* offsets = reinterpret_cast<int*>(kiln_stage);
                signed char* rows = reinterpret_cast<signed char*>(offsets + Kp);
                unsigned char* staged = reinterpret_cast<unsigned char*>(rows) + (KH * runBytes + 15) / 16 * 16;
                for (int k = threadIdx.x; k < Kp; k += blockDim.x) {
                    int offset = -1;
                    if (k < K) {
                        const int r = k / C, c = k - r * C, ky = r / KW, kx = r - ky * KW;
                        offset = (ky * span + kx * DW) * C + c;
                    }
                    offsets[k] = offset;
                }
                /* Each window row's span of pixels is one run of bytes in q: consecutive threads copy consecutive
                   bytes, those outside the image (a byte range, no division) reading `pad`. */
                const int iw0 = ow0 * SW - PW;
                const int lo = max(0, -iw0) * C, hi = min(span, W - iw0) * C;
                for (int ky = 0; ky < KH; ++ky) {
                    const int ih = oh * SH - PH + ky * DH;
                    const bool inRow = ih >= 0 && ih < H;
                    const signed char* from = q + ((n * H + ih) * W + iw0) * (i64)C;
                    #pragma unroll 4
                    for (int b = threadIdx.x; b < runBytes; b += blockDim.x)
                        rows[ky * runBytes + b] = inRow && b >= lo && b < hi ? from[b] : (signed char)pad;
                }
                __syncthreads();
                for (int task = threadIdx.x; task < Kp / 32 * pixels; task += blockDim.x) {
                    const int s = task / pixels, j = task - s * pixels;
                    const signed char* from = rows + j * SW * C;
                    const int* at = offsets + s * 32;
                    int words[8];
                    #pragma unroll
                    for (int w = 0; w < 8; ++w) {
                        int v = 0;
                        #pragma unroll
                        for (int b = 0; b < 4; ++b) {
                            const int offset = at[w * 4 + b];
                            v |= (offset < 0 ? 0 : (int)(unsigned char)from[offset]) << (8 * b);
                        }
                        words[w] = v;
                    }
                    int4* to = reinterpret_cast<int4*>(staged + j * pitch + s * 32);
                    to[0] = make_int4(words[0], words[1], words[2], words[3]);
                    to[1] = make_int4(words[4], words[5], words[6], words[7]);
                }
                __syncthreads();
                int4* out = reinterpret_cast<int4*>(cols + ((n * OH + oh) * OW + ow0) * (i64)Kp);
                const int chunks = Kp / 16;
                for (int c = threadIdx.x; c < pixels * chunks; c += blockDim.x) {
                    const int r = c / chunks;
                    out[c] = *reinterpret_cast<const int4*>(staged + r * pitch + (c - r * chunks) * 16);
                }
            }

            extern "C" __global__ void kiln_int8_patches_nhwc(
                const signed char* __restrict__ q, signed char* __restrict__ cols, KilnDims size, KilnDims window,
                int pad)
            {
                const bool narrow = size.v[0] * size.v[6] * size.v[7] < 2147483647LL
                    && size.v[0] * size.v[1] * size.v[2] * size.v[3] < 2147483647LL;
                if (narrow) kiln_int8_patches1<unsigned int>(q, cols, size, window, pad);
                else kiln_int8_patches1<i64>(q, cols, size, window, pad);
            }

            /* The same when C is a multiple of 16 (so K = KH*KW*C = Kp): one thread per 16-byte run of channels,
               32-bit indices when they fit. */
            template <typename IX>
            __device__ __forceinline__ void kiln_int8_patches16(
                const signed char* __restrict__ q, signed char* __restrict__ cols, const KilnDims& size,
                const KilnDims& window, int pad)
            {
                const IX C16 = (IX)(size.v[1] / 16), H = (IX)size.v[2], W = (IX)size.v[3], OW = (IX)size.v[5];
                const IX Pp = (IX)size.v[6];
                const int KH = (int)window.v[0], KW = (int)window.v[1], SH = (int)window.v[2], SW = (int)window.v[3];
                const int PH = (int)window.v[4], PW = (int)window.v[5], DH = (int)window.v[6], DW = (int)window.v[7];
                const IX P = (IX)size.v[4] * OW, R = (IX)(KH * KW);
                const IX total = (IX)size.v[0] * Pp * R * C16;
                const IX step = (IX)gridDim.x * blockDim.x;
                const int4* q16 = reinterpret_cast<const int4*>(q);
                int4* cols16 = reinterpret_cast<int4*>(cols);
                const signed char b = (signed char)pad;
                const int word = (int)(unsigned char)b * 0x01010101;
                const int4 padding = make_int4(word, word, word, word);
                for (IX i = (IX)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const IX c = i % C16;
                    IX t = i / C16;
                    const int r = (int)(t % R);
                    t /= R;
                    const IX pix = t % Pp;
                    const IX n = t / Pp;
                    int4 v = make_int4(0, 0, 0, 0);
                    if (pix < P) {
                        const int ih = (int)(pix / OW) * SH - PH + (r / KW) * DH;
                        const int iw = (int)(pix % OW) * SW - PW + (r % KW) * DW;
                        v = (ih < 0 || ih >= (int)H || iw < 0 || iw >= (int)W)
                            ? padding
                            : q16[((n * H + (IX)ih) * W + (IX)iw) * C16 + c];
                    }
                    cols16[i] = v;
                }
            }

            extern "C" __global__ void kiln_int8_patches_nhwc16(
                const signed char* __restrict__ q, signed char* __restrict__ cols, KilnDims size, KilnDims window,
                int pad)
            {
                const bool narrow = size.v[0] * size.v[6] * window.v[0] * window.v[1] * (size.v[1] / 16) < 2147483647LL
                    && size.v[0] * size.v[1] * size.v[2] * size.v[3] / 16 < 2147483647LL;
                if (narrow) kiln_int8_patches16<unsigned int>(q, cols, size, window, pad);
                else kiln_int8_patches16<i64>(q, cols, size, window, pad);
            }

            /* a [rows, K] -> q [rows, Kp]: q - offset, zeros past K. */
            extern "C" __global__ void kiln_int8_rows(
                const float* __restrict__ a, signed char* __restrict__ q, i64 rows, i64 K, i64 Kp, float scale, int zp,
                int lo, int hi, int offset)
            {
                kiln_bytes_rows(a, reinterpret_cast<unsigned char*>(q), rows, K, Kp,
                    [=](float v) { return (unsigned char)(kiln_int8_quant(v, scale, zp, lo, hi) - offset); });
            }

            #define KILN_INT8_FINISH(ACT) \\
                extern "C" __global__ void kiln_int8_finish_conv_act##ACT( \\
                    const int* __restrict__ d, const int* __restrict__ correction, const float* __restrict__ wscale, \\
                    const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y, \\
                    i64 total, i64 M, i64 P, i64 Pp, float xscale, int hasBias, int hasResidual, float p0, float p1, \\
                    int hasOut, float oscale, int ozp, int olo, int ohi) \\
                { \\
                    const i64 step = (i64)gridDim.x * blockDim.x; \\
                    if (total * (Pp > P ? Pp : P) / (P > 0 ? P : 1) < 2147483647LL) { \\
                        const unsigned int u = (unsigned int)total, up = (unsigned int)P, um = (unsigned int)M; \\
                        for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < u; i += gridDim.x * blockDim.x) { \\
                            const unsigned int pix = i % up, plane = i / up, m = plane % um; \\
                            const int acc = d[plane * (unsigned int)Pp + pix] + correction[m]; \\
                            y[i] = kiln_int8_finish<ACT>(acc, __fmul_rn(wscale[m], xscale), hasBias ? bias[m] : 0.0f, \\
                                hasResidual ? residual[i] : 0.0f, p0, p1, hasOut, oscale, ozp, olo, ohi); \\
                        } \\
                        return; \\
                    } \\
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) { \\
                        const i64 pix = i % P, m = (i / P) % M, n = i / (P * M); \\
                        const int acc = d[(n * M + m) * Pp + pix] + correction[m]; \\
                        y[i] = kiln_int8_finish<ACT>(acc, __fmul_rn(wscale[m], xscale), hasBias ? bias[m] : 0.0f, \\
                            hasResidual ? residual[i] : 0.0f, p0, p1, hasOut, oscale, ozp, olo, ohi); \\
                    } \\
                } \\
                extern "C" __global__ void kiln_int8_finish_rows_act##ACT( \\
                    const int* __restrict__ d, const int* __restrict__ correction, const float* __restrict__ wscale, \\
                    const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y, \\
                    i64 total, i64 N, i64 Np, float xscale, int hasBias, int hasResidual, float p0, float p1, \\
                    int hasOut, float oscale, int ozp, int olo, int ohi) \\
                { \\
                    const i64 step = (i64)gridDim.x * blockDim.x; \\
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) { \\
                        const i64 j = i % N; \\
                        const int acc = d[(i / N) * Np + j] + correction[j]; \\
                        y[i] = kiln_int8_finish<ACT>(acc, __fmul_rn(wscale[j], xscale), hasBias ? bias[j] : 0.0f, \\
                            hasResidual ? residual[i] : 0.0f, p0, p1, hasOut, oscale, ozp, olo, ohi); \\
                    } \\
                }

            KILN_INT8_FINISH(0)
            KILN_INT8_FINISH(1)
            KILN_INT8_FINISH(2)
            KILN_INT8_FINISH(3)
            KILN_INT8_FINISH(4)
            KILN_INT8_FINISH(5)
            KILN_INT8_FINISH(6)
            KILN_INT8_FINISH(7)
            KILN_INT8_FINISH(8)

            #define KILN_INT8(Q, NAME, ACT) \\
                extern "C" __global__ void kiln_conv2d_int8_##NAME##_act##ACT( \\
                    const Q* __restrict__ q, const signed char* __restrict__ w, const float* __restrict__ wscale, \\
                    const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y, \\
                    KilnDims size, KilnDims window, int group, int zp, float xscale, int hasBias, int hasResidual, \\
                    float p0, float p1, int hasOut, float oscale, int ozp, int olo, int ohi) \\
                { kiln_conv2d_int8<Q, ACT>(q, w, wscale, bias, residual, y, size, window, group, zp, xscale, \\
                    hasBias, hasResidual, p0, p1, hasOut, oscale, ozp, olo, ohi); } \\
                extern "C" __global__ void kiln_matmul_int8_##NAME##_act##ACT( \\
                    const Q* __restrict__ q, const signed char* __restrict__ b, const float* __restrict__ wscale, \\
                    const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y, \\
                    i64 rows, i64 N, i64 K, int zp, float xscale, int hasBias, int hasResidual, float p0, float p1, \\
                    int hasOut, float oscale, int ozp, int olo, int ohi) \\
                { kiln_matmul_int8<Q, ACT>(q, b, wscale, bias, residual, y, rows, N, K, zp, xscale, hasBias, \\
                    hasResidual, p0, p1, hasOut, oscale, ozp, olo, ohi); }

            #define KILN_INT8_ALL(ACT) KILN_INT8(signed char, i8, ACT) KILN_INT8(unsigned char, u8, ACT)
            KILN_INT8_ALL(0)
            KILN_INT8_ALL(1)
            KILN_INT8_ALL(2)
            KILN_INT8_ALL(3)
            KILN_INT8_ALL(4)
            KILN_INT8_ALL(5)
            KILN_INT8_ALL(6)
            KILN_INT8_ALL(7)
            KILN_INT8_ALL(8)

            """

    /// What the int8 and the float8 modules share, each with its own byte encoding (`encode`, a float to the
    /// stored byte) or products: the quantizing NHWC transpose and padded rows the cuBLASLt products read, and the
    /// direct 2-D convolution for grouped convolutions and weights that are not constants (one thread per output,
    /// `tap` adding one product to the sum, `finish` writing output `i` of output channel `m`).
    static let sharedCode = """
        /* x [N, C, HW] float -> q [N, HW, C] bytes through a 32x32 shared tile, so both the float reads and the
           byte writes are coalesced. Block 32x8; grid (HW/32, C/32, N). */
        template <typename Encode>
        __device__ __forceinline__ void kiln_bytes_nhwc(
            const float* __restrict__ x, unsigned char* __restrict__ q, i64 C, i64 HW, Encode encode)
        {
            __shared__ unsigned char tile[32][33];
            const i64 n = blockIdx.z, c0 = (i64)blockIdx.y * 32, s0 = (i64)blockIdx.x * 32;
            const float* xn = x + n * C * HW;
            unsigned char* qn = q + n * C * HW;
            for (int j = threadIdx.y; j < 32; j += 8) {
                const i64 c = c0 + j, s = s0 + threadIdx.x;
                if (c < C && s < HW) tile[j][threadIdx.x] = encode(xn[c * HW + s]);
            }
            __syncthreads();
            for (int j = threadIdx.y; j < 32; j += 8) {
                const i64 s = s0 + j, c = c0 + threadIdx.x;
                if (c < C && s < HW) qn[s * C + c] = tile[threadIdx.x][j];
            }
        }

        /* a [rows, K] float -> q [rows, Kp] bytes, zeros past K. */
        template <typename Encode>
        __device__ __forceinline__ void kiln_bytes_rows(
            const float* __restrict__ a, unsigned char* __restrict__ q, i64 rows, i64 K, i64 Kp, Encode encode)
        {
            const i64 total = rows * Kp;
            const i64 step = (i64)gridDim.x * blockDim.x;
            for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                const i64 k = i % Kp;
                q[i] = k < K ? encode(a[(i / Kp) * K + k]) : (unsigned char)0;
            }
        }

        /* size: N, C, H, W, M, OH, OW; window: KH, KW, SH, SW, PH, PW, DH, DW; q: X as bytes [N, C, H, W]. */
        template <typename Q, typename Wt, typename A, typename Tap, typename Finish>
        __device__ __forceinline__ void kiln_conv2d_direct(
            const Q* __restrict__ q, const Wt* __restrict__ w, const KilnDims& size, const KilnDims& window,
            int group, A zero, Tap tap, Finish finish)
        {
            const i64 C = size.v[1], H = size.v[2], W = size.v[3], M = size.v[4], OH = size.v[5], OW = size.v[6];
            const int KH = (int)window.v[0], KW = (int)window.v[1], SH = (int)window.v[2], SW = (int)window.v[3];
            const int PH = (int)window.v[4], PW = (int)window.v[5], DH = (int)window.v[6], DW = (int)window.v[7];
            const i64 Cg = C / group, Mg = M / group;
            const i64 total = size.v[0] * M * OH * OW;
            const i64 step = (i64)gridDim.x * blockDim.x;
            for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                const int ow = (int)(i % OW);
                const int oh = (int)((i / OW) % OH);
                const i64 m = (i / (OW * OH)) % M;
                const i64 n = i / (OW * OH * M);
                const i64 c0 = (m / Mg) * Cg;
                A acc = zero;
                for (i64 c = 0; c < Cg; ++c) {
                    const Q* plane = q + (n * C + c0 + c) * H * W;
                    const Wt* wp = w + (m * Cg + c) * KH * KW;
                    for (int kh = 0; kh < KH; ++kh) {
                        const int ih = oh * SH - PH + kh * DH;
                        if (ih < 0 || ih >= (int)H) continue;
                        for (int kw = 0; kw < KW; ++kw) {
                            const int iw = ow * SW - PW + kw * DW;
                            if (iw < 0 || iw >= (int)W) continue;
                            acc = tap(acc, plane[(i64)ih * W + iw], wp[kh * KW + kw]);
                        }
                    }
                }
                finish(i, m, acc);
            }
        }

        """
}
