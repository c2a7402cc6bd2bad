import KilnIR

/// A depthwise 2-D convolution (one group per channel, one filter per group) in NCHW as Kiln's own kernel, with
/// the bias, residual and activation applied before the single write. cuDNN's NCHW depthwise kernels are far
/// from the memory bound this layer has (MobileNetV2's 3×3 depthwise layers); here each thread computes output
/// elements along the width, so a warp reads neighbouring inputs and writes one contiguous run.
enum CUDADepthwiseConvolution {
    static let threads = 256
    static let maxBlocks = 132 * 16

    /// The launch for a depthwise convolution, or nil when the layer is not one (rank, groups, multiplier).
    static func launch(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        hasBias: Bool, dtype: DType = .float32
    ) throws -> CUDALaunch? {
        guard x.count == 4, layer.parameters.group == x[1], w[0] == x[1], w[1] == 1, x[1] > 1,
            r.padsBegin == r.padsEnd
        else { return nil }
        let total = out.reduce(1, *)
        let blocks = max(1, min((total + threads - 1) / threads, maxBlocks))
        let (low, high) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        let residual = layer.epilogue.residual
        return CUDALaunch(
            source: source(dtype),
            function: "kiln_depthwise_conv2d_\(dtype)_act\(act)",
            grid: CUDADim3(blocks),
            block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(.input(1)), .pointer(hasBias ? .input(2) : .input(1)),
                .pointer(residual ? .input(3) : .input(0)), .pointer(.output(0)),
                .dims([x[0], x[1], x[2], x[3], out[2], out[3]]),
                .dims([w[2], w[3], r.strides[0], r.strides[1], r.padsBegin[0], r.padsBegin[1]]),
                .dims([r.dilations[0], r.dilations[1]]), .int32(hasBias ? 1 : 0), .int32(residual ? 1 : 0),
                .float32(low), .float32(high),
            ])
    }

    /// The module for `dtype` elements (float32, float16 or bfloat16; arithmetic in float32).
    static func source(_ dtype: DType) -> CUDASource {
        CUDAPrelude.specialized("depthwise_conv2d", code, dtype: dtype)
    }

    private static let code =
        CUDALinearAlgebraEpilogue.activationCode + """
            /* size: N, C, H, W, OH, OW; window: KH, KW, SH, SW, PH, PW; dilation: DH, DW. IX is the index type:
               32-bit division is several times cheaper than 64-bit, and it dominates this memory-bound kernel. */
            typedef KILN_T T;
            __device__ __forceinline__ float kiln_dw_load(const float* p) { return __ldg(p); }
            template <typename U> __device__ __forceinline__ float kiln_dw_load(const U* p) { return (float)*p; }
            template <int ACT, typename IX, int K>
            __device__ __forceinline__ void kiln_depthwise_conv2d(
                const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                const T* __restrict__ residual, T* __restrict__ y, const KilnDims& size, const KilnDims& window,
                const KilnDims& dilation, int hasBias, int hasResidual, float p0, float p1)
            {
                const IX C = (IX)size.v[1], H = (IX)size.v[2], W = (IX)size.v[3], OH = (IX)size.v[4], OW = (IX)size.v[5];
                /* K > 0: a K×K window known at compile time, so the loops unroll. */
                const int KH = K > 0 ? K : (int)window.v[0], KW = K > 0 ? K : (int)window.v[1];
                const int SH = (int)window.v[2], SW = (int)window.v[3], PH = (int)window.v[4], PW = (int)window.v[5];
                const int DH = (int)dilation.v[0], DW = (int)dilation.v[1];
                const IX total = (IX)size.v[0] * C * OH * OW;
                const IX step = (IX)gridDim.x * blockDim.x;
                for (IX i = (IX)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const IX row = i / OW;
                    const int ow = (int)(i - row * OW);
                    const IX plane = row / OH;  /* n * C + c */
                    const int oh = (int)(row - plane * OH);
                    const IX c = plane % C;
                    const T* xp = x + plane * H * W;
                    const T* wp = w + c * KH * KW;
                    float acc = 0.0f;
                    #pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const int ih = oh * SH - PH + kh * DH;
                        if (ih < 0 || ih >= (int)H) continue;
                        const T* xr = xp + (IX)ih * W;
                        #pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const int iw = ow * SW - PW + kw * DW;
                            if (iw < 0 || iw >= (int)W) continue;
                            acc = fmaf(kiln_dw_load(xr + iw), kiln_dw_load(wp + kh * KW + kw), acc);
                        }
                    }
                    if (hasBias) acc += kiln_dw_load(bias + c);
                    if (hasResidual) acc += (float)residual[i];
                    y[i] = kiln_linalg_act<ACT>(acc, p0, p1);
                }
            }

            #define KILN_DEPTHWISE(ACT) \\
                extern "C" __global__ void kiln_depthwise_conv2d_KILN_NAME_act##ACT( \\
                    const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias, \\
                    const T* __restrict__ residual, T* __restrict__ y, KilnDims size, KilnDims window, \\
                    KilnDims dilation, int hasBias, int hasResidual, float p0, float p1) \\
                { \\
                    const bool narrow = size.v[0] * size.v[1] * size.v[2] * size.v[3] < 2147483647LL \\
                        && size.v[0] * size.v[1] * size.v[4] * size.v[5] < 2147483647LL; \\
                    const bool three = window.v[0] == 3 && window.v[1] == 3; \\
                    if (narrow && three) \\
                        kiln_depthwise_conv2d<ACT, unsigned int, 3>( \\
                            x, w, bias, residual, y, size, window, dilation, hasBias, hasResidual, p0, p1); \\
                    else if (narrow) \\
                        kiln_depthwise_conv2d<ACT, unsigned int, 0>( \\
                            x, w, bias, residual, y, size, window, dilation, hasBias, hasResidual, p0, p1); \\
                    else \\
                        kiln_depthwise_conv2d<ACT, i64, 0>( \\
                            x, w, bias, residual, y, size, window, dilation, hasBias, hasResidual, p0, p1); \\
                }

            KILN_DEPTHWISE(0)
            KILN_DEPTHWISE(1)
            KILN_DEPTHWISE(2)
            KILN_DEPTHWISE(3)
            KILN_DEPTHWISE(4)
            KILN_DEPTHWISE(5)
            KILN_DEPTHWISE(6)
            KILN_DEPTHWISE(7)
            KILN_DEPTHWISE(8)

            """
}
