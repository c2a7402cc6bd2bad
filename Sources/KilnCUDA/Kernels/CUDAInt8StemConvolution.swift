import KilnIR

/// Kiln's int8 convolution over a few input channels (a network's stem: ResNet's 7x7 stride 2 over RGB) for the
/// chained int8 engines: one kernel from the input image to the int8 NHWC output, no patches matrix in memory.
///
/// A block holds its 64 output channels' weights in registers (each warp its 32 columns' fragments, stored by
/// the host in the order the fragments read them: two 16-byte loads a step) and walks tiles of 8 x 16 output
/// pixels: it stages the tile's input window (each pixel's channels padded to whole 32-bit words, the image's
/// border zeros), and its eight warps (4 along the pixels x 2 along the channels, 32 x 32 each) multiply with
/// `mma.sync` `m16n8k32` on int8. The reduction runs over 32-bit words, each a tap's four channels, so every
/// fragment register of the input is one shared-memory load at a pixel's offset plus a tap's; where a window row's
/// words fit a step's eight (`rowsPerStep`: ResNet's 7 taps, MobileNet's 3x3 two rows to a step), a step is whole
/// window rows, so a thread's tap offsets are two registers plus a constant per step. Each warp finishes its
/// 32 x 32 outputs as the warpgroup convolution does (`alpha`, `beta`, ReLU, saturating round half to even)
/// through a shared stage into 16-byte stores. The next tile's input is loaded into registers during the
/// products.
///
/// The input is a chain's quantized value, int8 NHWC or NCHW (`channelsFirst`: the quantized image as it is,
/// with no transpose in front; each pixel's channels are then loads from C planes). (A form reading the float
/// NCHW image and quantizing it on the way in measured slower than the quantize and transpose kernels before
/// this one together: BENCHMARKS.md.)
enum CUDAInt8StemConvolution {
    static let threads = 256
    /// Output pixels of a tile: rows and columns.
    static let tile = (rows: 8, columns: 16)
    /// Output channels a block computes.
    static let columns = 64
    /// Reduction steps of 32 bytes (8 words) a kernel may take: their weights are 8 registers a step.
    static let maximumSteps = 8
    /// Blocks resident on one SM (the launch bounds hold a thread to 128 registers).
    static let blocksPerMultiprocessor = 2

    /// A convolution's window in the kernel's terms.
    struct Window: Hashable {
        var channels: Int
        var kernel: [Int]
        var strides: [Int]
        var dilations: [Int]

        init(channels: Int, kernel: [Int], strides: [Int], dilations: [Int]) {
            (self.channels, self.kernel, self.strides, self.dilations) = (channels, kernel, strides, dilations)
        }

        /// The window of a resolved convolution over `channels` channels.
        init(channels: Int, _ r: ConvolutionParameters.Resolved) {
            self.init(channels: channels, kernel: r.kernel, strides: r.strides, dilations: r.dilations)
        }

        /// 32-bit words of one pixel's channels.
        var words: Int { (channels + 3) / 4 }
        /// Whole window rows a step of 8 words takes, where one row's words fit; nil where taps run on across
        /// rows (8 words a step over all taps' words in order).
        var rowsPerStep: Int? { kernel[1] * words <= 8 ? 8 / (kernel[1] * words) : nil }
        /// Reduction steps of 8 words.
        var steps: Int {
            if let r = rowsPerStep { return (kernel[0] + r - 1) / r }
            return (kernel[0] * kernel[1] * words + 7) / 8
        }
        /// The tap (row, column) and word of step `step`'s word `slot` (0..<8), or nil for padding.
        func word(step: Int, slot: Int) -> (row: Int, column: Int, word: Int)? {
            let w = words
            if let r = rowsPerStep {
                let row = step * r + slot / (kernel[1] * w)
                let rest = slot % (kernel[1] * w)
                guard slot < r * kernel[1] * w, row < kernel[0] else { return nil }
                return (row, rest / w, rest % w)
            }
            let index = step * 8 + slot
            let tap = index / w
            guard tap < kernel[0] * kernel[1] else { return nil }
            return (tap / kernel[1], tap % kernel[1], index % w)
        }
        /// Window rows the steps reach (past the kernel's where the last step's rows run over it).
        var coveredRows: Int { rowsPerStep.map { steps * $0 } ?? kernel[0] }
        /// The staged input window of one tile of output pixels (the rows the steps reach).
        var inputRows: Int { (tile.rows - 1) * strides[0] + (coveredRows - 1) * dilations[0] + 1 }
        var inputColumns: Int { (tile.columns - 1) * strides[1] + (kernel[1] - 1) * dilations[1] + 1 }
        /// Words between staged input rows: a row's words, rounded up to 16 more than a multiple of 32, so a
        /// fragment's pixels and taps across two rows fall in distinct banks.
        var pitch: Int {
            let row = inputColumns * words
            return row + (16 - row % 32 + 32) % 32
        }
    }

    /// Whether the kernel takes a convolution over `channels` input channels into `outputChannels` with `window`:
    /// few enough steps for the weights' registers, output channels in whole blocks.
    static func takes(_ window: Window, outputChannels: Int) -> Bool {
        window.kernel.count == 2 && window.channels > 0 && window.channels < 64 && outputChannels % columns == 0
            && window.steps <= maximumSteps
            && sharedBytes(window) <= CUDAInt8WarpGroupConvolution.sharedLimit / blocksPerMultiprocessor
    }

    /// Dynamic shared memory: alpha and beta, the staged input window, and each warp's output stage of 32 pixels
    /// x 48 bytes.
    static func sharedBytes(_ window: Window) -> Int {
        2 * columns * 4 + window.inputRows * window.pitch * 4 + 8 * 32 * 48
    }

    /// The weights `[M, kh, kw, C]` (int8, the chained layer's order) as the fragments read them: for each block
    /// of 64 output channels, step s, warp column wn and half j, 32 lanes of four words; lane (g, t)'s eight words
    /// of a step are b0, b1 of its four 8-column fragments: output channel 64 nb + 32 wn + 8 f + g, the step's
    /// words t and t + 4 (`Window.word`). A word holds a tap's four channels (zeros past C and for padding).
    static func fragmentWeights(_ weights: Tensor, window: Window, outputChannels m: Int) throws -> Tensor {
        let (kh, kw, c) = (window.kernel[0], window.kernel[1], window.channels)
        guard weights.dtype == .int8, weights.count == m * kh * kw * c else {
            throw KilnError.shapeMismatch(
                "stem weights of \(weights.count) \(weights.dtype.onnxName) values, "
                    + "\(m) x \(kh) x \(kw) x \(c) int8 expected"
            )
        }
        let bytes = weights.scalars(as: UInt8.self)
        /// Output channel n's word `slot` of step `step` as four bytes.
        func word(_ n: Int, _ step: Int, _ slot: Int) -> [UInt8] {
            guard let (row, column, w) = window.word(step: step, slot: slot) else { return [0, 0, 0, 0] }
            return (0..<4).map { b in
                4 * w + b < c ? bytes[((n * kh + row) * kw + column) * c + 4 * w + b] : 0
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(m / columns * window.steps * 2048)
        for block in 0..<(m / columns) {
            for step in 0..<window.steps {
                for wn in 0..<2 {
                    for half in 0..<2 {
                        for lane in 0..<32 {
                            let g = lane / 4
                            let t = lane % 4
                            for fragment in (2 * half)..<(2 * half + 2) {
                                let n = block * columns + wn * 32 + fragment * 8 + g
                                out += word(n, step, t) + word(n, step, t + 4)
                            }
                        }
                    }
                }
            }
        }
        return try out.withUnsafeBytes { try Tensor(dtype: .int8, shape: [out.count], rawBytes: $0) }
    }

    /// One instantiation: the window, the input's layout, ReLU, and the conversion-free path for reductions of at
    /// most 256 products.
    struct Variant: Hashable {
        var window: Window
        var channelsFirst: Bool
        var relu: Bool

        var small: Bool { window.kernel[0] * window.kernel[1] * window.channels <= 256 }

        var function: String {
            let w = window
            return "kiln_i8_stem_c\(w.channels)_k\(w.kernel[0])x\(w.kernel[1])_s\(w.strides[0])x\(w.strides[1])"
                + "_d\(w.dilations[0])x\(w.dilations[1])\(channelsFirst ? "_nchw" : "")\(relu ? "_relu" : "")"
        }

        var source: CUDASource {
            let w = window
            let parameters = [
                w.channels, w.words, w.kernel[0], w.kernel[1], w.strides[0], w.strides[1], w.dilations[0],
                w.dilations[1], w.steps, w.rowsPerStep ?? 0, channelsFirst ? 1 : 0, relu ? 1 : 0, small ? 1 : 0,
            ].map(String.init).joined(separator: ", ")
            let entry = """
                extern "C" __global__ void __launch_bounds__(\(threads), \(blocksPerMultiprocessor)) \(function)(
                    const signed char* X, const uint4* B, const float* alpha, const float* beta, signed char* Y,
                    KilnDims g)
                {
                    kiln_i8_stem<\(parameters)>(X, B, alpha, beta, Y, g);
                }

                """
            return CUDASource(
                name: String(function.dropFirst("kiln_".count)),
                code: CUDAInt8WarpGroupConvolution.conversions + code + entry)
        }
    }

    /// The launch over `images` images of `height` x `width` into `output` (rows, columns) with `pads` (top,
    /// left): X int8 (NHWC, or NCHW for a `channelsFirst` variant), the fragment-ordered weights, alpha and
    /// beta `[M]`, Y int8 NHWC.
    static func launch(
        _ variant: Variant, x: CUDAOperand, weights: CUDAOperand, alpha: CUDAOperand,
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
                .pointer(x), .pointer(weights), .pointer(alpha), .pointer(beta), .pointer(y),
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

        /* g: N, H, W, Ho, Wo, M, pad top, pad left. Block (x, y) takes output channels 64 y ... 64 y + 63 and
           tiles x, x + gridDim.x, ... of 8 x 16 output pixels (image, tile row, tile column). R: window rows a step
           (0: taps run on across rows). NCHW: X is [N, C, H, W], else [N, H, W, C]. */
        template <int C, int CW, int KH, int KW, int SH, int SW, int DH, int DW, int STEPS, int R, int NCHW, int RELU,
                  int SMALL>
        __device__ __forceinline__ void kiln_i8_stem(
            const signed char* __restrict__ X, const uint4* __restrict__ B, const float* __restrict__ alpha,
            const float* __restrict__ beta, signed char* __restrict__ Y, KilnDims g)
        {
            constexpr int TH = 8, TW = 16, COVERED = R > 0 ? STEPS * R : KH;
            constexpr int IH = (TH - 1) * SH + (KH - 1) * DH + 1, IW = (TW - 1) * SW + (KW - 1) * DW + 1;
            constexpr int ROW = IW * CW, PITCH = ROW + (16 - ROW % 32 + 32) % 32, WORDS = KH * KW * CW;
            constexpr int STAGE = 48;
            extern __shared__ __align__(16) unsigned kiln_stem_shared[];
            float* alphaTile = reinterpret_cast<float*>(kiln_stem_shared);
            float* betaTile = alphaTile + 64;
            /* The window's rows past IH (the last step's rows past the kernel's, read against zero weights) are
               never written. */
            unsigned* window = reinterpret_cast<unsigned*>(betaTile + 64);
            unsigned char* stages =
                reinterpret_cast<unsigned char*>(window + ((TH - 1) * SH + (COVERED - 1) * DH + 1) * PITCH);
            const int N = (int)g.v[0], H = (int)g.v[1], W = (int)g.v[2], Ho = (int)g.v[3], Wo = (int)g.v[4];
            const int M = (int)g.v[5], PH = (int)g.v[6], PW = (int)g.v[7];
            const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tig = lane & 3;
            const int wm = warp >> 1, wn = warp & 1, n0 = blockIdx.y * 64;

            /* The warp's weight fragments, 8 registers a step: b0 and b1 of its four 8-column fragments. */
            unsigned b[STEPS][8];
            #pragma unroll
            for (int s = 0; s < STEPS; ++s) {
                const uint4* at = B + (((i64)blockIdx.y * STEPS + s) * 2 + wn) * 64 + lane;
                const uint4 lo = at[0], hi = at[32];
                b[s][0] = lo.x; b[s][1] = lo.y; b[s][2] = lo.z; b[s][3] = lo.w;
                b[s][4] = hi.x; b[s][5] = hi.y; b[s][6] = hi.z; b[s][7] = hi.w;
            }
            if (tid < 64) {
                alphaTile[tid] = alpha[n0 + tid];
                betaTile[tid] = beta[n0 + tid];
            }

            /* Thread (gq, tig) reads words tig and tig + 4 of every step for pixels 16 mf + gq (+ 8) of its warp's
               32: a staged word at the pixel's offset plus the tap's. With whole rows a step, the tap's offset is
               the thread's slot offset plus the step's rows; otherwise one offset a step and slot (padding reads
               any word: its weights are zero). */
            int slotOffset[2], tapOffset[R > 0 ? 1 : STEPS][2];
            #pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int u = tig + 4 * j;
                if (R > 0) {
                    const int rr = u / (KW * CW), rest = u - rr * (KW * CW), kx = rest / CW;
                    slotOffset[j] = rr < R ? rr * DH * PITCH + kx * DW * CW + (rest - kx * CW) : 0;
                } else {
                    #pragma unroll
                    for (int s = 0; s < STEPS; ++s) {
                        const int w = 8 * s + u, tap = w / CW, ky = tap / KW, kx = tap - ky * KW;
                        tapOffset[s][j] = w < WORDS ? ky * DH * PITCH + kx * DW * CW + (w - tap * CW) : 0;
                    }
                }
            }
            auto tap = [&](int s, int j) {
                if constexpr (R > 0) return s * R * DH * PITCH + slotOffset[j];
                else return tapOffset[s][j];
            };
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
               (the loads are in flight during the products), then placed in the window as whole words a pixel. */
            constexpr int PIXELS = IH * IW, PER = (PIXELS + 255) / 256;
            signed char held[PER][C];
            auto fetch = [&](int t) {
                const int n = t / perImage, r = t - n * perImage, tr = r / tileColumns;
                const int ih0 = tr * TH * SH - PH, iw0 = (r - tr * tileColumns) * TW * SW - PW;
                const signed char* x = X + (i64)n * C * H * W;
                #pragma unroll
                for (int k = 0; k < PER; ++k) {
                    const int i = tid + 256 * k, row = i / IW, ih = ih0 + row, iw = iw0 + i - row * IW;
                    const bool inside = t < tiles && i < PIXELS && ih >= 0 && ih < H && iw >= 0 && iw < W;
                    const int at = inside ? ih * W + iw : 0;
                    #pragma unroll
                    for (int c = 0; c < C; ++c)
                        held[k][c] = inside ? x[NCHW ? (i64)c * H * W + at : (i64)at * C + c] : (signed char)0;
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
                    for (int c = 0; c < C; ++c) words[c / 4] |= (unsigned)(unsigned char)held[k][c] << (8 * (c % 4));
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
                    #pragma unroll
                    for (int mf = 0; mf < 2; ++mf) {
                        const unsigned a[4] = {
                            window[pixelOffset[mf][0] + tap(s, 0)], window[pixelOffset[mf][1] + tap(s, 0)],
                            window[pixelOffset[mf][0] + tap(s, 1)], window[pixelOffset[mf][1] + tap(s, 1)],
                        };
                        #pragma unroll
                        for (int f = 0; f < 4; ++f) kiln_mma_i8(acc[mf][f], a, b[s][2 * f], b[s][2 * f + 1]);
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
