import KilnIR

/// Kiln's int8 convolution over a few input channels (a network's stem: ResNet's 7x7 stride 2 over RGB) for the
/// chained int8 engines: one kernel from the input image to the int8 NHWC output, no patches matrix in memory.
///
/// A block keeps its 64 output channels' weights in shared memory and walks tiles of 8 x 16 output pixels: it
/// stages the tile's input window (each pixel's channels padded to whole 32-bit words, the padding and the
/// image's border zeros), and its eight warps (4 along the pixels x 2 along the channels, 32 x 32 each) multiply
/// with `mma.sync` `m16n8k32` on int8: the reduction runs over the taps' words, so each 32-bit fragment
/// register of the input is one load of a tap's four channels, from the pixel's offset plus the tap's. The
/// weights are stored by the host in the order the fragments read them (two 16-byte loads a step) with zeros
/// past the last tap, and each warp finishes its 32 x 32 outputs as the warpgroup convolution does (`alpha`,
/// `beta`, ReLU, saturating round half to even) through a shared stage into 16-byte stores.
///
/// The input is int8 NHWC (a chain's quantized value) or float NCHW quantized on the way in with the input's
/// scale (`kiln_quantize1`, what the quantize layer computes), which saves the chain's first quantize and
/// transpose.
enum CUDAInt8StemConvolution {
    static let threads = 256
    /// Output pixels of a tile: rows and columns.
    static let tile = (rows: 8, columns: 16)
    /// Output channels a block computes.
    static let columns = 64
    /// Reduction steps of 32 bytes (8 words) a kernel may take: 16 steps keep the weights at 32 KiB a block.
    static let maximumSteps = 16
    /// Blocks resident on one SM (the launch bounds hold a thread to 128 registers).
    static let blocksPerMultiprocessor = 2

    /// A convolution's window in the kernel's terms.
    struct Window: Hashable {
        var channels: Int
        var kernel: [Int]
        var strides: [Int]
        var dilations: [Int]

        /// 32-bit words of one pixel's channels.
        var words: Int { (channels + 3) / 4 }
        /// Reduction steps of 8 words over every tap's words.
        var steps: Int { (kernel[0] * kernel[1] * words + 7) / 8 }
        /// The input window of one tile of output pixels.
        var inputRows: Int { (tile.rows - 1) * strides[0] + (kernel[0] - 1) * dilations[0] + 1 }
        var inputColumns: Int { (tile.columns - 1) * strides[1] + (kernel[1] - 1) * dilations[1] + 1 }
        /// Words between staged input rows: a row's words, rounded up to 16 more than a multiple of 32, so a
        /// fragment's pixels and taps across two rows fall in distinct banks.
        var pitch: Int {
            let row = inputColumns * words
            return row + (16 - row % 32 + 32) % 32
        }
    }

    /// Whether the kernel takes a convolution over `channels` input channels into `outputChannels` with `window`:
    /// few enough taps' words for the weights' shared memory, output channels in whole blocks.
    static func takes(_ window: Window, outputChannels: Int) -> Bool {
        window.channels > 0 && window.channels < 64 && outputChannels % columns == 0
            && window.steps <= maximumSteps && window.kernel.count == 2
            && sharedBytes(window) <= CUDAInt8WarpGroupConvolution.sharedLimit / blocksPerMultiprocessor
    }

    /// Dynamic shared memory: the weights (2 KiB a step), alpha and beta, the staged input window, and each warp's
    /// output stage of 32 pixels x 48 bytes.
    static func sharedBytes(_ window: Window) -> Int {
        window.steps * 2048 + 2 * columns * 4 + window.inputRows * window.pitch * 4 + 8 * 32 * 48
    }

    /// The weights `[M, kh, kw, C]` (int8, the chained layer's order) as the fragments read them: for each block
    /// of 64 output channels, step s, warp column wn and half j, 32 lanes of four words; lane (g, t)'s eight words
    /// of a step are b0, b1 of its four 8-column fragments: output channel 64 nb + 32 wn + 8 f + g, reduction words
    /// 8 s + t and 8 s + t + 4. A word holds a tap's four channels (zeros past C and past the last tap).
    static func fragmentWeights(_ weights: Tensor, window: Window, outputChannels m: Int) throws -> Tensor {
        let taps = window.kernel[0] * window.kernel[1], c = window.channels, words = window.words
        guard weights.dtype == .int8, weights.count == m * taps * c else {
            throw KilnError.shapeMismatch(
                "stem weights of \(weights.count) \(weights.dtype.onnxName) values, \(m) x \(taps) x \(c) int8 expected")
        }
        let bytes = weights.scalars(as: UInt8.self)
        /// Output channel n's reduction word w as four bytes.
        func word(_ n: Int, _ w: Int) -> [UInt8] {
            let tap = w / words, first = (w % words) * 4
            return (0..<4).map { b in
                tap < taps && first + b < c ? bytes[(n * taps + tap) * c + first + b] : 0
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(m / columns * window.steps * 2048)
        for block in 0..<(m / columns) {
            for step in 0..<window.steps {
                for wn in 0..<2 {
                    for half in 0..<2 {
                        for lane in 0..<32 {
                            let g = lane / 4, t = lane % 4
                            for fragment in (2 * half)..<(2 * half + 2) {
                                let n = block * columns + wn * 32 + fragment * 8 + g
                                out += word(n, 8 * step + t) + word(n, 8 * step + t + 4)
                            }
                        }
                    }
                }
            }
        }
        return try out.withUnsafeBytes { try Tensor(dtype: .int8, shape: [out.count], rawBytes: $0) }
    }

    /// One instantiation: the window, whether the input is float NCHW (quantized on the way in), ReLU, and the
    /// conversion-free path for reductions of at most 256 products.
    struct Variant: Hashable {
        var window: Window
        var floatInput: Bool
        var relu: Bool

        var small: Bool { window.kernel[0] * window.kernel[1] * window.channels <= 256 }

        var function: String {
            let w = window
            return "kiln_i8_stem_c\(w.channels)_k\(w.kernel[0])x\(w.kernel[1])_s\(w.strides[0])x\(w.strides[1])"
                + "_d\(w.dilations[0])x\(w.dilations[1])_\(floatInput ? "f32" : "i8")\(relu ? "_relu" : "")"
        }

        var source: CUDASource {
            let w = window
            let parameters = [
                w.channels, w.words, w.kernel[0], w.kernel[1], w.strides[0], w.strides[1], w.dilations[0],
                w.dilations[1], w.steps, floatInput ? 1 : 0, relu ? 1 : 0, small ? 1 : 0,
            ].map(String.init).joined(separator: ", ")
            let entry = """
                extern "C" __global__ void __launch_bounds__(\(threads), \(blocksPerMultiprocessor)) \(function)(
                    const void* X, float inputScale, const uint4* B, const float* alpha, const float* beta,
                    signed char* Y, KilnDims g)
                {
                    kiln_i8_stem<\(parameters)>(X, inputScale, B, alpha, beta, Y, g);
                }

                """
            return CUDASource(
                name: String(function.dropFirst("kiln_".count)),
                code: CUDAQuantizedProducts.quantizeOne + CUDAInt8WarpGroupConvolution.conversions + code + entry)
        }
    }

    /// The launch over `images` images of `height` x `width` into `output` (rows, columns) with `pads` (top,
    /// left): X (int8 NHWC or float NCHW), the fragment-ordered weights, alpha and beta `[M]`, Y int8 NHWC.
    static func launch(
        _ variant: Variant, x: CUDAOperand, inputScale: Float, weights: CUDAOperand, alpha: CUDAOperand,
        beta: CUDAOperand, y: CUDAOperand, images: Int, height: Int, width: Int, output: [Int], pads: [Int],
        outputChannels: Int, multiprocessors: Int
    ) -> CUDALaunch {
        let tiles =
            images * ((output[0] + tile.rows - 1) / tile.rows) * ((output[1] + tile.columns - 1) / tile.columns)
        let blocks = outputChannels / columns
        let resident = max(1, multiprocessors * blocksPerMultiprocessor / blocks)
        return CUDALaunch(
            source: variant.source, function: variant.function,
            grid: CUDADim3(multiprocessors > 0 ? min(tiles, resident) : tiles, blocks),
            block: CUDADim3(threads), sharedBytes: sharedBytes(variant.window),
            arguments: [
                .pointer(x), .float32(inputScale), .pointer(weights), .pointer(alpha), .pointer(beta), .pointer(y),
                .dims([images, height, width, output[0], output[1], outputChannels, pads[0], pads[1]]),
            ])
    }

    static let code = """
        __device__ __forceinline__ void kiln_mma_i8(int* d, const unsigned* a, unsigned b0, unsigned b1) {
            asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                "{%8, %9}, {%0, %1, %2, %3};"
                : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
        }

        template <int FLOAT_IN> struct kiln_stem_value { typedef signed char type; };
        template <> struct kiln_stem_value<1> { typedef float type; };

        /* g: N, H, W, Ho, Wo, M, pad top, pad left. Block (x, y) takes output channels 64 y ... 64 y + 63 and
           tiles x, x + gridDim.x, ... of 8 x 16 output pixels (image, tile row, tile column). */
        template <int C, int CW, int KH, int KW, int SH, int SW, int DH, int DW, int STEPS, int FLOAT_IN, int RELU,
                  int SMALL>
        __device__ __forceinline__ void kiln_i8_stem(
            const void* __restrict__ X, float inputScale, const uint4* __restrict__ B, const float* __restrict__ alpha,
            const float* __restrict__ beta, signed char* __restrict__ Y, KilnDims g)
        {
            constexpr int TH = 8, TW = 16;
            constexpr int IH = (TH - 1) * SH + (KH - 1) * DH + 1, IW = (TW - 1) * SW + (KW - 1) * DW + 1;
            constexpr int ROW = IW * CW, PITCH = ROW + (16 - ROW % 32 + 32) % 32, WORDS = KH * KW * CW;
            constexpr int STAGE = 48;
            extern __shared__ __align__(16) unsigned kiln_stem_shared[];
            uint4* weights = reinterpret_cast<uint4*>(kiln_stem_shared);
            float* alphaTile = reinterpret_cast<float*>(weights + STEPS * 128);
            float* betaTile = alphaTile + 64;
            unsigned* window = reinterpret_cast<unsigned*>(betaTile + 64);
            unsigned char* stages = reinterpret_cast<unsigned char*>(window + IH * PITCH);
            const int N = (int)g.v[0], H = (int)g.v[1], W = (int)g.v[2], Ho = (int)g.v[3], Wo = (int)g.v[4];
            const int M = (int)g.v[5], PH = (int)g.v[6], PW = (int)g.v[7];
            const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tig = lane & 3;
            const int wm = warp >> 1, wn = warp & 1, n0 = blockIdx.y * 64;

            const uint4* blockWeights = B + (i64)blockIdx.y * STEPS * 128;
            for (int i = tid; i < STEPS * 128; i += blockDim.x) weights[i] = blockWeights[i];
            if (tid < 64) {
                alphaTile[tid] = alpha[n0 + tid];
                betaTile[tid] = beta[n0 + tid];
            }
            /* Thread (gq, tig) reads reduction words 8 s + tig and 8 s + tig + 4 of pixels 16 mf + gq (+ 8) of its
               warp's 32: each a staged word at a pixel's offset plus a tap's (past the last tap any word: its
               weights are zero). */
            int tapOffset[STEPS][2];
            #pragma unroll
            for (int s = 0; s < STEPS; ++s) {
                #pragma unroll
                for (int j = 0; j < 2; ++j) {
                    const int w = 8 * s + tig + 4 * j, tap = w / CW, ky = tap / KW, kx = tap - ky * KW;
                    tapOffset[s][j] = w < WORDS ? ky * DH * PITCH + kx * DW * CW + (w - tap * CW) : 0;
                }
            }
            int pixelOffset[2][2];
            #pragma unroll
            for (int mf = 0; mf < 2; ++mf) {
                #pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int p = wm * 32 + mf * 16 + gq + 8 * h;
                    pixelOffset[mf][h] = (p / TW) * SH * PITCH + (p % TW) * SW * CW;
                }
            }
            const int tileRows = (Ho + TH - 1) / TH, tileColumns = (Wo + TW - 1) / TW;
            const int perImage = tileRows * tileColumns, tiles = N * perImage;
            unsigned char* stage = stages + warp * 32 * STAGE;

            /* A tile's input window, PER pixels a thread (IH x IW, row-major): fetched into registers a tile ahead
               (the loads are in flight during the products), then placed in the window as one word a pixel
               (quantized there from float). */
            constexpr int PIXELS = IH * IW, PER = (PIXELS + 255) / 256;
            typedef typename kiln_stem_value<FLOAT_IN>::type Value;
            Value held[PER][C];
            auto fetch = [&](int t) {
                const int n = t / perImage, r = t - n * perImage, tr = r / tileColumns;
                const int ih0 = tr * TH * SH - PH, iw0 = (r - tr * tileColumns) * TW * SW - PW;
                const float* xf = static_cast<const float*>(X) + (i64)n * C * H * W;
                const signed char* xq = static_cast<const signed char*>(X) + (i64)n * H * W * C;
                #pragma unroll
                for (int k = 0; k < PER; ++k) {
                    const int i = tid + 256 * k, row = i / IW, ih = ih0 + row, iw = iw0 + i - row * IW;
                    const bool inside = t < tiles && i < PIXELS && ih >= 0 && ih < H && iw >= 0 && iw < W;
                    const int at = inside ? ih * W + iw : 0;
                    #pragma unroll
                    for (int c = 0; c < C; ++c) {
                        if (FLOAT_IN) held[k][c] = inside ? xf[(i64)c * H * W + at] : Value(0);
                        else held[k][c] = inside ? xq[(i64)at * C + c] : Value(0);
                    }
                }
            };
            auto place = [&]() {
                #pragma unroll
                for (int k = 0; k < PER; ++k) {
                    const int i = tid + 256 * k, row = i / IW;
                    unsigned words[CW];
                    #pragma unroll
                    for (int w = 0; w < CW; ++w) words[w] = 0u;
                    #pragma unroll
                    for (int c = 0; c < C; ++c) {
                        const unsigned byte = FLOAT_IN ? kiln_quantize1((float)held[k][c], inputScale, 0, -128, 127)
                                                       : (unsigned)(unsigned char)held[k][c];
                        words[c / 4] |= byte << (8 * (c % 4));
                    }
                    if (i < PIXELS) {
                        #pragma unroll
                        for (int w = 0; w < CW; ++w) window[row * PITCH + (i - row * IW) * CW + w] = words[w];
                    }
                }
            };
            fetch(blockIdx.x);
            for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
                const int n = t / perImage, r = t - n * perImage, tr = r / tileColumns;
                const int oh0 = tr * TH, ow0 = (r - tr * tileColumns) * TW;
                /* Every warp is done with the previous window. */
                __syncthreads();
                place();
                __syncthreads();
                fetch(t + gridDim.x);

                int acc[2][4][4];
                #pragma unroll
                for (int mf = 0; mf < 2; ++mf)
                    #pragma unroll
                    for (int f = 0; f < 4; ++f)
                        #pragma unroll
                        for (int i = 0; i < 4; ++i) acc[mf][f][i] = 0;
                #pragma unroll
                for (int s = 0; s < STEPS; ++s) {
                    const uint4 lo = weights[((s * 2 + wn) * 2) * 32 + lane];
                    const uint4 hi = weights[((s * 2 + wn) * 2 + 1) * 32 + lane];
                    #pragma unroll
                    for (int mf = 0; mf < 2; ++mf) {
                        const unsigned a[4] = {
                            window[pixelOffset[mf][0] + tapOffset[s][0]], window[pixelOffset[mf][1] + tapOffset[s][0]],
                            window[pixelOffset[mf][0] + tapOffset[s][1]], window[pixelOffset[mf][1] + tapOffset[s][1]],
                        };
                        kiln_mma_i8(acc[mf][0], a, lo.x, lo.y);
                        kiln_mma_i8(acc[mf][1], a, lo.z, lo.w);
                        kiln_mma_i8(acc[mf][2], a, hi.x, hi.y);
                        kiln_mma_i8(acc[mf][3], a, hi.z, hi.w);
                    }
                }

                /* Accumulator i of fragment (mf, f): pixel 16 mf + gq (+ 8 for i >= 2) of the warp's 32, channel
                   8 f + 2 tig + i % 2 of its 32; finished into the stage, stored as two 16-byte runs a pixel. */
                #pragma unroll
                for (int mf = 0; mf < 2; ++mf) {
                    #pragma unroll
                    for (int f = 0; f < 4; ++f) {
                        const int c = 8 * f + 2 * tig, cc = wn * 32 + c;
                        #pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const float x0 = kiln_i8_float<SMALL>(acc[mf][f][2 * h]) * alphaTile[cc] + betaTile[cc];
                            const float x1 =
                                kiln_i8_float<SMALL>(acc[mf][f][2 * h + 1]) * alphaTile[cc + 1] + betaTile[cc + 1];
                            *reinterpret_cast<unsigned short*>(stage + (16 * mf + gq + 8 * h) * STAGE + c) =
                                kiln_i8_pair<RELU>(x0, x1);
                        }
                    }
                }
                __syncwarp();
                #pragma unroll
                for (int i = 0; i < 2; ++i) {
                    const int chunk = lane + 32 * i, q = chunk >> 1, half = chunk & 1, p = wm * 32 + q;
                    const int oh = oh0 + p / TW, ow = ow0 + p % TW;
                    if (oh < Ho && ow < Wo)
                        *reinterpret_cast<uint4*>(Y + (((i64)n * Ho + oh) * Wo + ow) * M + n0 + wn * 32 + 16 * half) =
                            *reinterpret_cast<const uint4*>(stage + q * STAGE + 16 * half);
                }
                __syncwarp();
            }
        }

        """
}
