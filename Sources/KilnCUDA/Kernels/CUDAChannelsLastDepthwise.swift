import KilnIR

/// A depthwise convolution stored channels-last (X `[N, H, W, C]`, W `[C, kh, kw, 1]`) as Kiln's tiled kernel,
/// with the bias, residual and activation applied before the single write. A block takes one image, a tile
/// of `tile × tile` output pixels and a chunk of channels: it copies the input window the tile needs (with
/// its halo, zeros for the padding) and the chunk's filters to shared memory once, then each thread computes
/// a few neighbouring channels of one output pixel from there. Reading each input pixel once per tile rather
/// than once per tap keeps this memory-bound layer (MobileNetV2's 3×3 layers) off the L2 bandwidth limit.
/// `inputMax` clamps the input as it is copied.
enum CUDAChannelsLastDepthwise {
    /// Output pixels per tile side, before shrinking to fit shared memory.
    static let tile = 8
    /// Channel groups (of `vectorWidth` channels) per block.
    static let groups = 4
    static let sharedLimit = 48 << 10

    /// Channels per thread: the most that divide `channels` and fit one 16-byte access.
    static func vectorWidth(channels: Int, dtype: DType) -> Int {
        var width = 16 / max(dtype.byteSize, 1)
        while width > 1, channels % width != 0 { width /= 2 }
        return max(width, 1)
    }

    /// The launch, or nil when the layer is not depthwise or its window does not fit shared memory (cuDNN
    /// takes it then). `x`, `w` and `out` are the channels-first shapes.
    static func launch(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        info: CUDANodeInfo, dtype: DType
    ) throws -> CUDALaunch? {
        let channels = x[1]
        guard layer.parameters.group == channels, w[0] == channels, w[1] == 1, channels > 1, x[0] <= 65535,
            [.float32, .float16, .bfloat16].contains(dtype)
        else { return nil }
        let vector = vectorWidth(channels: channels, dtype: dtype)
        let groups = min(Self.groups, channels / vector)
        let chunk = groups * vector
        let taps = w[2] * w[3]
        // Shrink the tile until the input window and the filters fit.
        var side = tile
        func sharedBytes(_ side: Int) -> Int {
            let rows = (side - 1) * r.strides[0] + (w[2] - 1) * r.dilations[0] + 1
            let columns = (side - 1) * r.strides[1] + (w[3] - 1) * r.dilations[1] + 1
            return (taps * chunk * 4 + 15) / 16 * 16 + rows * columns * chunk * dtype.byteSize
        }
        while side > 1, sharedBytes(side) > sharedLimit { side /= 2 }
        guard sharedBytes(side) <= sharedLimit else { return nil }
        let tiles = ((out[2] + side - 1) / side) * ((out[3] + side - 1) / side)
        let chunks = (channels + chunk - 1) / chunk
        guard tiles > 0, chunks <= 65535 else { return nil }
        let hasBias = info.hasInput(2)
        let residual = layer.epilogue.residual
        let (low, high) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        let source = CUDAPrelude.specialized(
            "depthwise_nhwc_a\(act)_v\(vector)", "#define KILN_ACT \(act)\n#define KILN_VEC \(vector)\n" + code,
            dtype: dtype)
        return CUDALaunch(
            source: source, function: "kiln_depthwise_nhwc", grid: CUDADim3(tiles, chunks, x[0]),
            block: CUDADim3(side * side * groups), sharedBytes: sharedBytes(side),
            arguments: [
                .pointer(.input(0)), .pointer(.input(1)), .pointer(hasBias ? .input(2) : .input(1)),
                .pointer(residual ? .input(CUDAChannelsLastConvolution.residualIndex) : .input(0)),
                .pointer(.output(0)), .dims([x[0], x[1], x[2], x[3], out[2], out[3]]),
                .dims([w[2], w[3], r.strides[0], r.strides[1], r.padsBegin[0], r.padsBegin[1]]),
                .dims([r.dilations[0], r.dilations[1], side, side, groups]), .int32(hasBias ? 1 : 0),
                .int32(residual ? 1 : 0), .float32(low), .float32(high), .int32(layer.inputMax == nil ? 0 : 1),
                .float32(layer.inputMax ?? 0),
            ])
    }

    private static let code =
        CUDALinearAlgebraEpilogue.activationCode + """
            /* size: N, C, H, W, OH, OW; window: KH, KW, SH, SW, PH, PW; tile: DH, DW, TH, TW, G. Block
               (blockIdx.x: spatial tile, y: channel chunk of G * KILN_VEC, z: image); thread (pixel of the tile,
               channel group). Shared memory: the chunk's filters as float [KH * KW][chunk], then the input
               window [rows][columns][G] of KILN_VEC-channel vectors. */
            typedef KILN_T T;
            struct __align__(sizeof(T) * KILN_VEC) KilnVec { T v[KILN_VEC]; };

            template <int K>
            __device__ __forceinline__ void kiln_depthwise_nhwc_body(
                const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                const T* __restrict__ residual, T* __restrict__ y, const KilnDims& size, const KilnDims& window,
                const KilnDims& tile, int hasBias, int hasResidual, float p0, float p1, int clampInput, float inputMax)
            {
                extern __shared__ __align__(16) unsigned char kiln_shared[];
                const int C = (int)size.v[1], H = (int)size.v[2], W = (int)size.v[3];
                const int OH = (int)size.v[4], OW = (int)size.v[5];
                const int KH = K > 0 ? K : (int)window.v[0], KW = K > 0 ? K : (int)window.v[1];
                const int SH = (int)window.v[2], SW = (int)window.v[3], PH = (int)window.v[4], PW = (int)window.v[5];
                const int DH = (int)tile.v[0], DW = (int)tile.v[1], TH = (int)tile.v[2], TW = (int)tile.v[3];
                const int G = (int)tile.v[4];
                const int rows = (TH - 1) * SH + (KH - 1) * DH + 1, columns = (TW - 1) * SW + (KW - 1) * DW + 1;
                const int tilesW = (OW + TW - 1) / TW;
                const int oh0 = ((int)blockIdx.x / tilesW) * TH, ow0 = ((int)blockIdx.x % tilesW) * TW;
                const int chunk = G * KILN_VEC, c0 = (int)blockIdx.y * chunk;
                const int groupsHere = min(G, (C - c0) / KILN_VEC);
                const int taps = KH * KW;
                const i64 n = blockIdx.z;
                float* filters = (float*)kiln_shared;
                KilnVec* window_ = (KilnVec*)(kiln_shared + (taps * chunk * 4 + 15) / 16 * 16);
                for (int j = threadIdx.x; j < taps * chunk; j += blockDim.x) {
                    const int tap = j / chunk, cc = j % chunk;
                    filters[j] = c0 + cc < C ? (float)w[(i64)(c0 + cc) * taps + tap] : 0.0f;
                }
                const int ih0 = oh0 * SH - PH, iw0 = ow0 * SW - PW;
                const T* xn = x + n * H * W * C + c0;
                for (int j = threadIdx.x; j < rows * columns * G; j += blockDim.x) {
                    const int g = j % G, at = j / G, column = at % columns, row = at / columns;
                    const int ih = ih0 + row, iw = iw0 + column;
                    KilnVec v;
                    if (g < groupsHere && ih >= 0 && ih < H && iw >= 0 && iw < W) {
                        v = *(const KilnVec*)(xn + ((i64)ih * W + iw) * C + g * KILN_VEC);
                        if (clampInput) {
                            #pragma unroll
                            for (int k = 0; k < KILN_VEC; ++k) if ((float)v.v[k] > inputMax) v.v[k] = (T)inputMax;
                        }
                    } else {
                        #pragma unroll
                        for (int k = 0; k < KILN_VEC; ++k) v.v[k] = (T)0.0f;
                    }
                    window_[j] = v;
                }
                __syncthreads();
                const int g = (int)threadIdx.x % G, p = (int)threadIdx.x / G;
                const int ph = p / TW, pw = p % TW, oh = oh0 + ph, ow = ow0 + pw;
                if (g >= groupsHere || oh >= OH || ow >= OW) return;
                float acc[KILN_VEC];
                #pragma unroll
                for (int k = 0; k < KILN_VEC; ++k) acc[k] = 0.0f;
                #pragma unroll
                for (int kh = 0; kh < KH; ++kh) {
                    #pragma unroll
                    for (int kw = 0; kw < KW; ++kw) {
                        const KilnVec in = window_[((ph * SH + kh * DH) * columns + pw * SW + kw * DW) * G + g];
                        const float* f = filters + (kh * KW + kw) * chunk + g * KILN_VEC;
                        #pragma unroll
                        for (int k = 0; k < KILN_VEC; ++k) acc[k] = fmaf((float)in.v[k], f[k], acc[k]);
                    }
                }
                const i64 o = ((n * OH + oh) * OW + ow) * C + c0 + g * KILN_VEC;
                KilnVec r;
                if (hasResidual) r = *(const KilnVec*)(residual + o);
                KilnVec result;
                #pragma unroll
                for (int k = 0; k < KILN_VEC; ++k) {
                    float a = acc[k];
                    if (hasBias) a += (float)bias[c0 + g * KILN_VEC + k];
                    if (hasResidual) a += (float)r.v[k];
                    result.v[k] = (T)kiln_linalg_act<KILN_ACT>(a, p0, p1);
                }
                *(KilnVec*)(y + o) = result;
            }

            extern "C" __global__ void kiln_depthwise_nhwc(
                const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                const T* __restrict__ residual, T* __restrict__ y, KilnDims size, KilnDims window, KilnDims tile,
                int hasBias, int hasResidual, float p0, float p1, int clampInput, float inputMax)
            {
                if (window.v[0] == 3 && window.v[1] == 3)
                    kiln_depthwise_nhwc_body<3>(
                        x, w, bias, residual, y, size, window, tile, hasBias, hasResidual, p0, p1, clampInput, inputMax);
                else
                    kiln_depthwise_nhwc_body<0>(
                        x, w, bias, residual, y, size, window, tile, hasBias, hasResidual, p0, p1, clampInput, inputMax);
            }

            """
}
