import KilnIR

/// Kiln's int8 convolution for Hopper (sm_90a): an implicit GEMM on the warpgroup tensor-core instructions
/// (`wgmma.mma_async` `m64nNk32.s32.s8.s8`) whose input and output are int8 NHWC tensors, so a chain of
/// quantized convolutions moves one byte per activation and never a float.
///
/// Rows are output pixels (image, row, column), columns output channels, and the reduction runs over the
/// filter taps and, within a tap, the input channels: weights are `[Cout, kh, kw, C]` int8 (K innermost, the
/// only layout the integer instructions read). One thread of the ninth warp loads, for each step, a
/// 128-pixel x BK-channel tile of the input with the tensor memory accelerator's im2col mode (the hardware
/// walks the pixels of the output grid, applies stride, dilation and the tap's offset, and zero-fills the
/// padding) and a BN x BK tile of the weights, into a ring of STAGES buffers (BK-byte rows, swizzled as the
/// instructions read them); the two warpgroups before it multiply 64 rows each and finish every tile in float:
///
///     y = saturate(roundHalfEven(acc · alpha[n] + beta[n] + residualScale · residual)), then max(y, 0) with ReLU
///
/// where the host folds the input, weight and output scales into `alpha` (`sx · sw[n] / sy`) and the bias into
/// `beta` (`bias[n] / sy`), and `residualScale` is the residual's scale over the output's. A 1x1 stride-1
/// convolution without padding can load its input as a plain [pixels, C] matrix instead (`IM2COL` 0).
///
/// Needs C a multiple of BK (64 or 128: the swizzle span is BK bytes) and Cout a multiple of BN.
enum CUDAInt8WarpGroupConvolution {
    static let rowsPerBlock = 128
    /// Two consumer warpgroups and the loader's warp: a loader warpgroup of which one thread works (the first
    /// form) made every block hold registers for 96 idle threads. 288 threads measured 1-5% faster on
    /// ResNet-50's shapes at one block an SM (`bench/kernels/int8_conv.py --threads 288`, H100).
    static let threads = 288
    /// Blocks of 64-column tiles resident on one SM: their 72 registers a thread and shared memory leave room
    /// for two, whose epilogues then overlap; ResNet-50's 3x3 over 64 channels at batch 64 took 30.1 us so
    /// against 39.8 with one (`bench/kernels/int8_conv.py --blocks-per-sm 2`). Wider tiles keep one by default;
    /// 128 columns fit two by squeezing registers, faster on some shapes (ResNet-50's expansions over 64 and 128
    /// channels: 57.8 -> 53.0 and 31.6 -> 29.3 us) and slower on others, so that form is one more tactic to time
    /// (`pairedTiles`).
    static func blocksPerMultiprocessor(columns: Int) -> Int { columns == 64 ? 2 : 1 }

    /// The tile width that also runs two blocks an SM, as an alternative.
    static let pairedTiles = 128
    /// The shared memory a block of sm_90 may take.
    static let sharedLimit = 227 << 10

    /// The operands: X int8 `[N, H, W, C]`, W int8 `[Cout, kh, kw, C]`, alpha and beta float `[Cout]`, an optional
    /// int8 residual of Y's shape, and Y int8 `[N, Ho, Wo, Cout]`.
    struct Operands {
        var input: CUDAOperand
        var weights: CUDAOperand
        var alpha: CUDAOperand
        var beta: CUDAOperand
        var residual: CUDAOperand?
        var output: CUDAOperand
    }

    /// The launch of the convolution of `window` over `channels` input channels into `outputChannels`, or nil
    /// where the kernel does not apply: not Hopper (sm_90), channels not a multiple of 64, output channels not a
    /// multiple of 64, or an im2col corner outside what a 4-D map holds.
    static func launch(
        _ operands: Operands, window: CUDAIm2colWindow, channels: Int, outputChannels: Int, residualScale: Float,
        relu: Bool, architecture: Int, multiprocessors: Int, columns chosen: Int? = nil, blocks: Int? = nil
    ) -> CUDALaunch? {
        guard architecture == 90, channels % 64 == 0, outputChannels % 64 == 0, window.cornersFit else { return nil }
        let output = window.output
        let pixels = window.images * window.height * window.width
        let m = window.images * output[0] * output[1]
        guard m > 0, output.allSatisfy({ $0 > 0 }) else { return nil }
        let depth = channels % 128 == 0 ? 128 : 64
        let columns = chosen ?? tileColumns(rows: m, outputChannels: outputChannels, multiprocessors: multiprocessors)
        guard tileWidths.contains(columns), outputChannels % columns == 0 else { return nil }
        let residual = operands.residual != nil
        let perSM = blocks ?? blocksPerMultiprocessor(columns: columns)
        let stages = fittingStages(columns: columns, depth: depth, residual: residual, blocks: perSM)
        let reduction = window.kernel[0] * window.kernel[1] * channels
        let plain =
            window.kernel == [1, 1] && window.strides == [1, 1] && window.padsBegin == [0, 0]
            && window.padsEnd == [0, 0]
        let small = reduction <= 256
        let mapA = CUDATensorMap(
            operands.input, dtype: .int8, rows: pixels, columns: channels, rowStride: channels,
            boxRows: rowsPerBlock, boxColumns: depth, swizzleBytes: depth, window: plain ? nil : window)
        let mapB = CUDATensorMap(
            operands.weights, dtype: .int8, rows: outputChannels, columns: reduction, rowStride: reduction,
            boxRows: columns, boxColumns: depth, swizzleBytes: depth)
        let tiles = (m + rowsPerBlock - 1) / rowsPerBlock * (outputChannels / columns)
        let variant = Variant(
            columns: columns, depth: depth, stages: stages, im2col: !plain, relu: relu, residual: residual,
            small: small, blocks: perSM)
        return CUDALaunch(
            source: variant.source, function: variant.function,
            grid: CUDADim3(multiprocessors > 0 ? min(tiles, multiprocessors * perSM) : tiles),
            block: CUDADim3(threads),
            sharedBytes: sharedBytes(columns: columns, depth: depth, stages: stages, residual: residual),
            arguments: [
                .tensorMap(mapA), .tensorMap(mapB), .pointer(operands.alpha), .pointer(operands.beta),
                operands.residual.map { .pointer($0) } ?? .int64(0), .float32(residualScale),
                .pointer(operands.output),
                .dims([m, outputChannels, output[0], output[1], window.kernel[0], window.kernel[1], channels / depth]),
                .dims(window.strides + window.padsBegin + window.dilations),
            ])
    }

    /// The launch `launch` gives first (the tile width `tileColumns` estimates fastest), then the same
    /// convolution with each other tile width that divides the output channels, and `pairedTiles` two blocks an
    /// SM: the builder times them (`CUDALowering.alternatives`; integer sums, so every form gives the same bytes).
    static func launches(
        _ operands: Operands, window: CUDAIm2colWindow, channels: Int, outputChannels: Int, residualScale: Float,
        relu: Bool, architecture: Int, multiprocessors: Int
    ) -> [CUDALaunch] {
        func make(_ columns: Int?, blocks: Int? = nil) -> CUDALaunch? {
            launch(
                operands, window: window, channels: channels, outputChannels: outputChannels,
                residualScale: residualScale, relu: relu, architecture: architecture,
                multiprocessors: multiprocessors, columns: columns, blocks: blocks)
        }
        let paired = leadsWithPairedTiles(window: window, channels: channels, outputChannels: outputChannels)
        guard let first = paired ? make(pairedTiles, blocks: 2) : make(nil) else { return [] }
        let others = tileWidths.compactMap { make($0) } + [make(pairedTiles, blocks: 2)].compactMap { $0 }
        return [first] + others.filter { $0.function != first.function }
    }

    /// Whether `pairedTiles` two blocks an SM is the first guess: 1x1 convolutions over at most 128 channels
    /// into 256 or more, where the epilogue's bytes outweigh the products (ResNet-50's expansions and first
    /// downsample: 57.8 -> 53.0, 41.3 -> 36.3 and 31.6 -> 29.3 us on an H100, `bench/kernels/int8_conv.py`). The
    /// timer keeps the first launch unless another is 3% faster, and these margins are near that in a build's
    /// timing, so the better guess goes first.
    static func leadsWithPairedTiles(window: CUDAIm2colWindow, channels: Int, outputChannels: Int) -> Bool {
        window.kernel == [1, 1] && channels <= 128 && outputChannels >= 256 && outputChannels % pairedTiles == 0
    }

    /// The tile widths (output channels per tile) the kernel has.
    static let tileWidths = [256, 128, 64]

    /// Output channels per tile: 256, 128 or 64 (dividing `outputChannels`), whichever the grid's waves make
    /// fastest, a tile's time taken as its columns times 1, 1.15 or 1.5 (narrow tiles reuse each input load less;
    /// ratios `bench/kernels/int8_conv.py` measured on ResNet-50's shapes).
    static func tileColumns(rows: Int, outputChannels: Int, multiprocessors: Int) -> Int {
        let blocks = max(multiprocessors, 1)
        let costs = [(256, 1.0), (128, 1.15), (64, 1.5)].filter { outputChannels % $0.0 == 0 }.map {
            (columns, weight) -> (Int, Double) in
            let tiles = (rows + rowsPerBlock - 1) / rowsPerBlock * (outputChannels / columns)
            return (columns, Double((tiles + blocks - 1) / blocks) * Double(columns) * weight)
        }
        return costs.min { $0.1 < $1.1 }?.0 ?? 64
    }

    /// The most buffers (4, 6 or 8 for 256, 128 or 64 columns) that fit beside the epilogue's stages, `blocks`
    /// blocks an SM (each block also costs the SM 1 KiB).
    static func fittingStages(columns: Int, depth: Int, residual: Bool, blocks: Int = 1) -> Int {
        var stages = columns == 256 ? 4 : columns == 128 ? 6 : 8
        let limit = (sharedLimit + 1024) / blocks - 1024
        while stages > 2, sharedBytes(columns: columns, depth: depth, stages: stages, residual: residual) > limit {
            stages -= 1
        }
        return stages
    }

    /// Dynamic shared memory: the buffers (aligned to 1024 bytes), their barriers, a tile's per-channel `alpha`
    /// and `beta`, and each consumer warp's stages of 16 rows (`columns` bytes and 16 of padding; two with a
    /// residual).
    static func sharedBytes(columns: Int, depth: Int, stages: Int, residual: Bool) -> Int {
        (rowsPerBlock + columns) * depth * stages + 1024 + 16 * stages + 8 * columns
            + 8 * (residual ? 2 : 1) * 16 * (columns + 16)
    }

    /// The instruction `m64nNk32` on int8 operands as a device function `kiln_wgmma_i8_nN(int* d, u64 a, u64 b)`:
    /// d (N/2 accumulators per thread) += A·B from the two shared-memory descriptors.
    static func instruction(n: Int) -> String {
        let count = n / 2
        let registers = (0..<count).map { "%\($0)" }.joined(separator: ", ")
        let outputs = (0..<count).map { "\"+r\"(d[\($0)])" }.joined(separator: ", ")
        return """
            __device__ __forceinline__ void kiln_wgmma_i8_n\(n)(int* d, u64 a, u64 b) {
                asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %\(count + 2), 0;\\n"
                    "wgmma.mma_async.sync.aligned.m64n\(n)k32.s32.s8.s8 {\(registers)}, "
                    "%\(count), %\(count + 1), p;\\n}\\n"
                    : \(outputs)
                    : "l"(a), "l"(b), "r"(1));
            }

            """
    }

    /// Every instruction width the kernel instantiates.
    static let widths = [64, 128, 256]

    /// An int32 sum as a float, and a float as its saturated, rounded int8 byte: the epilogue arithmetic of every
    /// int8 convolution kernel that writes int8.
    static let conversions = """
        /* An accumulator as a float: exact either way; SMALL (|v| <= 2^22, a reduction of at most 256 products of
           int8 values) through the float 1.5 * 2^23 + v, which needs no conversion instruction (a quarter of the
           rate of the arithmetic). */
        template <int SMALL> __device__ __forceinline__ float kiln_i8_float(int v) {
            if constexpr (SMALL) return __int_as_float(v + 0x4B400000) - 12582912.f;
            else return (float)v;
        }

        /* Two values clamped to [LO, 127], then rounded half to even by adding 1.5 * 2^23 (the low byte of the
           sum's bits is the int8 result), as two bytes. */
        template <int RELU> __device__ __forceinline__ unsigned short kiln_i8_pair(float x0, float x1) {
            x0 = fminf(fmaxf(x0, RELU ? 0.f : -128.f), 127.f) + 12582912.f;
            x1 = fminf(fmaxf(x1, RELU ? 0.f : -128.f), 127.f) + 12582912.f;
            return (unsigned short)__byte_perm(__float_as_uint(x0), __float_as_uint(x1), 0x0040);
        }

        """

    static let code = """
        template <int BN> __device__ __forceinline__ void kiln_wgmma_i8(int* d, u64 a, u64 b) {
            if constexpr (BN == 256) kiln_wgmma_i8_n256(d, a, b);
            else if constexpr (BN == 128) kiln_wgmma_i8_n128(d, a, b);
            else kiln_wgmma_i8_n64(d, a, b);
        }

        /* A K-major shared-memory matrix descriptor for rows of SW bytes swizzled over SW bytes (128 or 64): the
           8-row atoms are 8 * SW bytes apart. */
        template <int SW> __device__ __forceinline__ u64 kiln_i8_desc(unsigned address) {
            return kiln_wg_desc(address, 16, 8 * SW, SW == 128 ? 1 : 2);
        }

        /* The im2col box of a 4-D NHWC tensor map starting at the window corner (w, h) of image n, channel c,
           shifted by the tap offset (ow, oh); completes its bytes on `bar`. */
        __device__ __forceinline__ void kiln_tma_im2col(
            unsigned dst, const KilnTensorMap* map, int c, int w, int h, int n, unsigned short ow,
            unsigned short oh, unsigned bar)
        {
            asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes "
                "[%0], [%1, {%2, %3, %4, %5}], [%6], {%7, %8};"
                :: "r"(dst), "l"((u64)map), "r"(c), "r"(w), "r"(h), "r"(n), "r"(bar), "h"(ow), "h"(oh)
                : "memory");
        }

        /* g: M (pixels), Cout, Ho, Wo, kh, kw, C / BK. s: strides, pads (begin) and dilations, height first.
           Persistent: block b takes tiles b, b + gridDim.x, ... (channel tiles fastest). */
        template <int BN, int BK, int STAGES, int IM2COL, int RELU, int RES, int SMALL>
        __device__ __forceinline__ void kiln_i8_conv(
            const KilnTensorMap* mapA, const KilnTensorMap* mapB, const float* __restrict__ alpha,
            const float* __restrict__ beta, const signed char* __restrict__ residual, float residualScale,
            signed char* __restrict__ Y, KilnDims g, KilnDims s)
        {
            extern __shared__ __align__(1024) unsigned char kiln_i8_shared[];
            const int BM = 128;
            const unsigned A_BYTES = BM * BK, STAGE = (BM + BN) * BK;
            const unsigned origin = (unsigned)__cvta_generic_to_shared(kiln_i8_shared);
            const unsigned base = (origin + 1023u) & ~1023u;
            const unsigned full = base + STAGES * STAGE, empty = full + STAGES * 8;
            const int M = (int)g.v[0], N = (int)g.v[1], Ho = (int)g.v[2], Wo = (int)g.v[3], KW = (int)g.v[5];
            const int CB = (int)g.v[6], KT = (int)g.v[4] * KW * CB;
            const int tid = threadIdx.x, wg = tid >> 7;
            const int NT = (N + BN - 1) / BN, tiles = ((M + BM - 1) / BM) * NT;
            if (tid == 0) {
                for (int i = 0; i < STAGES; ++i) {
                    kiln_bar_init(full + 8 * i, 1);
                    kiln_bar_init(empty + 8 * i, 8);
                }
                asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
            }
            __syncthreads();

            if (tid >= 256) {
                if (tid != 256) return;
                const int sh = (int)s.v[0], sw = (int)s.v[1], ph = (int)s.v[2], pw = (int)s.v[3];
                const int dh = (int)s.v[4], dw = (int)s.v[5];
                int it = 0;
                for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
                    const int m0 = (tile / NT) * BM, n0 = (tile % NT) * BN;
                    const int image = m0 / (Ho * Wo), rest = m0 - image * Ho * Wo, ho = rest / Wo;
                    const int h0 = ho * sh - ph, w0 = (rest - ho * Wo) * sw - pw;
                    for (int kt = 0; kt < KT; ++kt, ++it) {
                        const int st = it % STAGES, use = it / STAGES;
                        if (use > 0) kiln_bar_wait(empty + 8 * st, (use & 1) ^ 1);
                        const unsigned a = base + st * STAGE, bar = full + 8 * st;
                        const int tap = kt / CB, cb = kt - tap * CB, r = tap / KW;
                        kiln_bar_expect(bar, STAGE);
                        if (IM2COL)
                            kiln_tma_im2col(a, mapA, cb * BK, w0, h0, image, (unsigned short)((tap - r * KW) * dw),
                                (unsigned short)(r * dh), bar);
                        else
                            kiln_tma_2d(a, mapA, cb * BK, m0, bar);
                        kiln_tma_2d(a + A_BYTES, mapB, kt * BK, n0, bar);
                    }
                }
                return;
            }

            /* Consumer thread ct of 256: warpgroup cw multiplies rows 64 cw ... 64 cw + 63 of every tile. */
            const int cw = wg, warp = (tid & 127) >> 5, lane = tid & 31, ct = tid;
            float* alphaTile = (float*)(kiln_i8_shared + (empty + STAGES * 8 - origin));
            float* betaTile = alphaTile + BN;
            /* Each consumer warp's stages (two with a residual: the next tile's arrives during this one's epilogue):
               its 16 rows of a tile, padded so the rows' pairs fall in distinct banks. */
            const int PITCH = BN + 16;
            unsigned char* stages = (unsigned char*)(betaTile + BN) + (cw * 4 + warp) * (RES ? 2 : 1) * 16 * PITCH;
            /* The warp's rows of a tile's residual, copied into a stage (zeros past M). */
            auto fetchResidual = [&](int tile, int buffer) {
                const int m0 = (tile / NT) * BM, n0 = (tile % NT) * BN, top = m0 + cw * 64 + warp * 16;
                const unsigned to = (unsigned)__cvta_generic_to_shared(stages + buffer * 16 * PITCH);
                #pragma unroll
                for (int i = 0; i < BN / 32; ++i) {
                    const int index = lane + 32 * i, r = index / (BN / 16), q = index % (BN / 16);
                    const bool inside = top + r < M;
                    const signed char* from = residual + (inside ? (i64)(top + r) * N + n0 + 16 * q : 0);
                    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                        :: "r"(to + r * PITCH + 16 * q), "l"(from), "r"(inside ? 16 : 0) : "memory");
                }
                asm volatile("cp.async.commit_group;" ::: "memory");
            };
            /* A tile's alpha and beta for column ct, loaded a tile ahead of their use. */
            float alphaValue = 0.f, betaValue = 0.f;
            auto fetchScales = [&](int tile) {
                const int n0 = (tile % NT) * BN;
                const bool holds = tile < tiles && ct < BN && n0 + ct < N;
                alphaValue = holds ? alpha[n0 + ct] : 0.f;
                betaValue = holds ? beta[n0 + ct] : 0.f;
            };
            fetchScales(blockIdx.x);
            if (RES && blockIdx.x < tiles) fetchResidual(blockIdx.x, 0);
            int d[BN / 2];
            int ordinal = 0;
            for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x, ++ordinal) {
                const int m0 = (tile / NT) * BM, n0 = (tile % NT) * BN;
                const int top = m0 + cw * 64 + warp * 16;
                unsigned char* stage = stages + (RES ? (ordinal & 1) : 0) * 16 * PITCH;
                #pragma unroll
                for (int i = 0; i < BN / 2; ++i) d[i] = 0;
                int it = ordinal * KT;
                for (int kt = 0; kt < KT; ++kt, ++it) {
                    const int st = it % STAGES;
                    kiln_bar_wait(full + 8 * st, (it / STAGES) & 1);
                    const unsigned a = base + st * STAGE + cw * 64 * BK, b = base + st * STAGE + A_BYTES;
                    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
                    #pragma unroll
                    for (int kk = 0; kk < BK / 32; ++kk)
                        kiln_wgmma_i8<BN>(d, kiln_i8_desc<BK>(a + kk * 32), kiln_i8_desc<BK>(b + kk * 32));
                    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
                    /* The previous buffer's products are done once at most this one is in flight. */
                    asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
                    if (kt > 0 && lane == 0) kiln_bar_arrive(empty + 8 * ((it - 1) % STAGES));
                }
                asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
                if (lane == 0) kiln_bar_arrive(empty + 8 * ((it - 1) % STAGES));

                /* Every consumer is past the previous tile's epilogue before its alpha and beta are replaced. */
                asm volatile("bar.sync 1, 256;" ::: "memory");
                if (ct < BN) {
                    alphaTile[ct] = alphaValue;
                    betaTile[ct] = betaValue;
                }
                asm volatile("bar.sync 1, 256;" ::: "memory");
                fetchScales(tile + gridDim.x);
                if (RES && tile + gridDim.x < tiles) fetchResidual(tile + gridDim.x, (ordinal + 1) & 1);

                /* Accumulator i: row 16 * warp + lane / 4 (+ 8 for odd i / 2) of the warpgroup's 64, column
                   8 * (i / 4) + 2 * (lane % 4) + i % 2. Each warp finishes its 16 rows in its stage (over the
                   residual, which arrived during the products) and stores them as 16-byte runs of whole rows. */
                if (RES) {
                    /* This tile's residual is in (the next tile's may still be coming). */
                    if (tile + gridDim.x < tiles) asm volatile("cp.async.wait_group 1;" ::: "memory");
                    else asm volatile("cp.async.wait_group 0;" ::: "memory");
                    __syncwarp();
                }
                #pragma unroll
                for (int j = 0; j < BN / 8; ++j) {
                    const int c = j * 8 + 2 * (lane & 3);
                    const float2 av = *(const float2*)(alphaTile + c), bv = *(const float2*)(betaTile + c);
                    #pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        unsigned short* at = (unsigned short*)(stage + ((lane >> 2) + 8 * h) * PITCH + c);
                        float x0 = kiln_i8_float<SMALL>(d[4 * j + 2 * h]) * av.x + bv.x;
                        float x1 = kiln_i8_float<SMALL>(d[4 * j + 2 * h + 1]) * av.y + bv.y;
                        if (RES) {
                            /* Each residual byte r as the float 2^23 + 128 + r, less that constant (exact). */
                            const unsigned v = *at;
                            x0 += residualScale * (__uint_as_float((v & 0xFFu) ^ 0x4B000080u) - 8388736.f);
                            x1 += residualScale * (__uint_as_float(((v >> 8) & 0xFFu) ^ 0x4B000080u) - 8388736.f);
                        }
                        *at = kiln_i8_pair<RELU>(x0, x1);
                    }
                }
                __syncwarp();
                #pragma unroll
                for (int i = 0; i < BN / 32; ++i) {
                    const int index = lane + 32 * i, r = index / (BN / 16), q = index % (BN / 16);
                    if (top + r < M)
                        *(uint4*)(Y + (i64)(top + r) * N + n0 + 16 * q) = *(const uint4*)(stage + r * PITCH + 16 * q);
                }
                __syncwarp();
            }
        }

        """

    /// One instantiation of the kernel template: output channels per tile, reduction bytes per step (the
    /// swizzle span), shared-memory buffers, whether it loads through im2col, applies ReLU, adds a residual
    /// and takes the conversion-free path for reductions of at most 256 products, and the blocks an SM its
    /// launch bounds allow.
    struct Variant: Hashable {
        var columns: Int
        var depth: Int
        var stages: Int
        var im2col: Bool
        var relu: Bool
        var residual: Bool
        var small: Bool
        var blocks: Int

        init(
            columns: Int, depth: Int, stages: Int, im2col: Bool, relu: Bool, residual: Bool, small: Bool,
            blocks: Int? = nil
        ) {
            (self.columns, self.depth, self.stages) = (columns, depth, stages)
            (self.im2col, self.relu, self.residual, self.small) = (im2col, relu, residual, small)
            self.blocks = blocks ?? CUDAInt8WarpGroupConvolution.blocksPerMultiprocessor(columns: columns)
        }

        private var flags: [Bool] { [im2col, relu, residual, small] }

        /// The entry point's name (`_b2` where the blocks an SM are not the width's default).
        var function: String {
            let paired =
                blocks == CUDAInt8WarpGroupConvolution.blocksPerMultiprocessor(columns: columns) ? "" : "_b\(blocks)"
            return "kiln_i8_conv_\(columns)_\(depth)_\(stages)_" + flags.map { $0 ? "1" : "0" }.joined() + paired
        }

        /// The module holding the entry point, compiled for sm_90a.
        var source: CUDASource {
            let template = flags.map { $0 ? "1" : "0" }.joined(separator: ", ")
            let entry = """
                extern "C" __global__ void __launch_bounds__(\(threads), \(blocks)) \(function)(
                    const __grid_constant__ KilnTensorMap mapA, const __grid_constant__ KilnTensorMap mapB,
                    const float* alpha, const float* beta, const signed char* residual, float residualScale,
                    signed char* Y, KilnDims g, KilnDims s)
                {
                    kiln_i8_conv<\(columns), \(depth), \(stages), \(template)>(
                        &mapA, &mapB, alpha, beta, residual, residualScale, Y, g, s);
                }

                """
            let text =
                CUDAWarpGroupProduct.tensorMemory + widths.map { instruction(n: $0) }.joined() + conversions + code
                + entry
            return CUDASource(
                name: String(function.dropFirst("kiln_".count)), code: text, architectureSpecific: true)
        }
    }
}
