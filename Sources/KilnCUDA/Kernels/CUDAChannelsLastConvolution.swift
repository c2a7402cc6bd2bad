import KilnIR

/// Convolutions stored channels-last (`ConvolutionLayer.channelsLast`: X `[N, H, W, C]`, W `[M, kh, kw, C/g]`,
/// Y `[N, OH, OW, M]`), the layout cuDNN's tensor-core kernels read without reformatting. A 1×1 convolution is
/// one product `Y[NHW, M] = X[NHW, C] · Wᵀ` (the bias, residual and ReLU in cuBLASLt's epilogue); a depthwise
/// one is Kiln's kernel, one output pixel and a few neighbouring channels per thread; every other one is cuDNN
/// with NHWC descriptors. Shapes arrive channels-first (`x`, `w`, `out` as the ONNX layer has them).
enum CUDAChannelsLastConvolution {
    static let residualIndex = 3

    static func lower(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        info: CUDANodeInfo, dtype: DType
    ) throws -> CUDALowering {
        let stored = ChannelsLast.permuted(out, ChannelsLast.fromFirst(rank: 4))
        if let depthwise = try depthwise(layer, x: x, w: w, out: out, resolved: r, info: info, dtype: dtype) {
            return CUDALowering(.launch(depthwise))
        }
        if let product = try pointwiseAsMatMul(layer, x: x, w: w, resolved: r, stored: stored, info: info, dtype: dtype)
        {
            return product
        }
        let activation = layer.epilogue.activation
        let step = CUDAConvolution(
            x: .input(0), w: .input(1), bias: info.hasInput(2) ? .input(2) : nil,
            residual: layer.epilogue.residual ? .input(residualIndex) : nil, y: .output(0), inputShape: x,
            weightShape: w, outputShape: out, pads: r.padsBegin, strides: r.strides, dilations: r.dilations,
            groups: layer.parameters.group, activation: activation == .relu ? .relu : nil, dtype: dtype,
            channelsLast: true)
        guard let activation, activation != .relu,
            let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                activation: activation, bias: nil, shape: stored, dtype: dtype)
        else { return CUDALowering(.convolution(step)) }
        return CUDALowering(.convolution(step), .launch(launch))
    }

    /// A 1×1 convolution (stride 1, no padding, one group) as one product over every pixel of the batch. Nil
    /// for any other convolution.
    static func pointwiseAsMatMul(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], resolved r: ConvolutionParameters.Resolved, stored: [Int],
        info: CUDANodeInfo, dtype: DType
    ) throws -> CUDALowering? {
        guard layer.parameters.group == 1, r.kernel.allSatisfy({ $0 == 1 }), r.strides.allSatisfy({ $0 == 1 }),
            r.padsBegin.allSatisfy({ $0 == 0 })
        else { return nil }
        let pixels = x[0] * x[2] * x[3]
        guard pixels > 0, x[1] > 0, w[0] > 0 else { return nil }
        let activation = layer.epilogue.activation
        // cuBLASLt's epilogues: ReLU and tanh-GELU, with or without the bias; any other activation follows.
        let inLibrary = activation == nil || activation == .relu || activation == .gelu(tanh: true)
        var step = CUDAMatMul(
            a: .input(0), b: .input(1), bias: info.hasInput(2) ? .input(2) : nil, d: .output(0), m: pixels,
            n: w[0], k: x[1], transposeB: true, activation: inLibrary ? activation : nil, dtype: dtype)
        if layer.epilogue.residual {
            step.c = .input(residualIndex)
            step.beta = 1
        }
        guard !inLibrary,
            let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                activation: activation, bias: nil, shape: stored, dtype: dtype)
        else { return CUDALowering(.matMul(step)) }
        return CUDALowering(.matMul(step), .launch(launch))
    }

    static let threads = 256
    static let maxBlocks = 132 * 16

    /// Channels per thread in the channels-last kernels: the most that divide `channels` and fit one 16-byte
    /// access.
    static func vectorWidth(channels: Int, dtype: DType) -> Int {
        var width = 16 / max(dtype.byteSize, 1)
        while width > 1, channels % width != 0 { width /= 2 }
        return max(width, 1)
    }

    /// A depthwise convolution (one input channel and one filter per group) as Kiln's kernel, or nil.
    static func depthwise(
        _ layer: ConvolutionLayer, x: [Int], w: [Int], out: [Int], resolved r: ConvolutionParameters.Resolved,
        info: CUDANodeInfo, dtype: DType
    ) throws -> CUDALaunch? {
        let channels = x[1]
        guard layer.parameters.group == channels, w[0] == channels, w[1] == 1, channels > 1 else { return nil }
        let hasBias = info.hasInput(2)
        let residual = layer.epilogue.residual
        let vector = vectorWidth(channels: channels, dtype: dtype)
        let total = out[0] * out[2] * out[3] * channels / vector
        let blocks = max(1, min((total + threads - 1) / threads, maxBlocks))
        let (low, high) = CUDALinearAlgebraEpilogue.parameters(layer.epilogue.activation)
        let act = CUDALinearAlgebraEpilogue.activationIndex(layer.epilogue.activation)
        // The filters, as float32 with the channels innermost, in each block's shared memory when they fit the
        // 48 KiB every launch may take: one vector read per tap instead of one load per channel.
        let filterBytes = channels * w[2] * w[3] * 4
        let shared = filterBytes <= 48 << 10
        let source = CUDAPrelude.specialized(
            "depthwise_nhwc_a\(act)_v\(vector)\(shared ? "_s" : "")",
            "#define KILN_ACT \(act)\n#define KILN_VEC \(vector)\n#define KILN_SHARED \(shared ? 1 : 0)\n" + code,
            dtype: dtype)
        return CUDALaunch(
            source: source,
            function: "kiln_depthwise_nhwc",
            grid: CUDADim3(blocks),
            block: CUDADim3(threads),
            sharedBytes: shared ? filterBytes : 0,
            arguments: [
                .pointer(.input(0)), .pointer(.input(1)), .pointer(hasBias ? .input(2) : .input(1)),
                .pointer(residual ? .input(residualIndex) : .input(0)), .pointer(.output(0)),
                .dims([x[0], x[1], x[2], x[3], out[2], out[3]]),
                .dims([w[2], w[3], r.strides[0], r.strides[1], r.padsBegin[0], r.padsBegin[1]]),
                .dims([r.dilations[0], r.dilations[1]]), .int32(hasBias ? 1 : 0), .int32(residual ? 1 : 0),
                .float32(low), .float32(high),
            ])
    }

    private static let code =
        CUDALinearAlgebraEpilogue.activationCode + """
            /* X [N, H, W, C], W [C, KH, KW] (one filter per channel), Y [N, OH, OW, C]. Each thread computes
               KILN_VEC neighbouring channels of one output pixel with one vector load per tap, so a warp reads
               and writes contiguous runs. With KILN_SHARED the block first copies the filters to shared memory
               as float, taps outermost ([KH * KW][C]), so a tap's KILN_VEC weights are contiguous too.
               size: N, C, H, W, OH, OW; window: KH, KW, SH, SW, PH, PW; dilation: DH, DW. IX is the index
               type (32-bit division is several times cheaper than 64-bit). */
            typedef KILN_T T;
            struct __align__(sizeof(T) * KILN_VEC) KilnVec { T v[KILN_VEC]; };
            extern __shared__ float kiln_filters[];

            template <typename IX, int K>
            __device__ __forceinline__ void kiln_depthwise_nhwc_body(
                const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                const T* __restrict__ residual, T* __restrict__ y, const KilnDims& size, const KilnDims& window,
                const KilnDims& dilation, int hasBias, int hasResidual, float p0, float p1)
            {
                const IX C = (IX)size.v[1], H = (IX)size.v[2], W = (IX)size.v[3], OH = (IX)size.v[4], OW = (IX)size.v[5];
                const int KH = K > 0 ? K : (int)window.v[0], KW = K > 0 ? K : (int)window.v[1];
                const int SH = (int)window.v[2], SW = (int)window.v[3], PH = (int)window.v[4], PW = (int)window.v[5];
                const int DH = (int)dilation.v[0], DW = (int)dilation.v[1];
                const IX groups = C / KILN_VEC;
                const IX total = (IX)size.v[0] * OH * OW * groups;
                if (KILN_SHARED) {
                    const int taps = KH * KW;
                    for (int j = threadIdx.x; j < (int)C * taps; j += blockDim.x)
                        kiln_filters[(j % taps) * (int)C + j / taps] = (float)w[j];
                    __syncthreads();
                }
                const IX step = (IX)gridDim.x * blockDim.x;
                for (IX i = (IX)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                    const IX g = i % groups;
                    IX rest = i / groups;
                    const int ow = (int)(rest % OW);
                    rest /= OW;
                    const int oh = (int)(rest % OH);
                    const IX n = rest / OH;
                    const IX c = g * KILN_VEC;
                    const T* xp = x + n * H * W * C + c;
                    const T* wp = w + c * (IX)(KH * KW);
                    float acc[KILN_VEC];
                    #pragma unroll
                    for (int v = 0; v < KILN_VEC; ++v) acc[v] = 0.0f;
                    #pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const int ih = oh * SH - PH + kh * DH;
                        if (ih < 0 || ih >= (int)H) continue;
                        #pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const int iw = ow * SW - PW + kw * DW;
                            if (iw < 0 || iw >= (int)W) continue;
                            const KilnVec in = *(const KilnVec*)(xp + ((IX)ih * W + (IX)iw) * C);
                            #pragma unroll
                            const float* sp = kiln_filters + (kh * KW + kw) * (int)C + (int)c;
                            #pragma unroll
                            for (int v = 0; v < KILN_VEC; ++v)
                                acc[v] = fmaf(
                                    (float)in.v[v], KILN_SHARED ? sp[v] : (float)wp[v * KH * KW + kh * KW + kw], acc[v]);
                        }
                    }
                    const IX o = i * KILN_VEC;
                    KilnVec r;
                    if (hasResidual) r = *(const KilnVec*)(residual + o);
                    KilnVec result;
                    #pragma unroll
                    for (int v = 0; v < KILN_VEC; ++v) {
                        float a = acc[v];
                        if (hasBias) a += (float)bias[c + v];
                        if (hasResidual) a += (float)r.v[v];
                        result.v[v] = (T)kiln_linalg_act<KILN_ACT>(a, p0, p1);
                    }
                    *(KilnVec*)(y + o) = result;
                }
            }

            extern "C" __global__ void kiln_depthwise_nhwc(
                const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                const T* __restrict__ residual, T* __restrict__ y, KilnDims size, KilnDims window, KilnDims dilation,
                int hasBias, int hasResidual, float p0, float p1)
            {
                const bool narrow = size.v[0] * size.v[1] * size.v[2] * size.v[3] < 2147483647LL
                    && size.v[0] * size.v[1] * size.v[4] * size.v[5] < 2147483647LL;
                const bool three = window.v[0] == 3 && window.v[1] == 3;
                if (narrow && three)
                    kiln_depthwise_nhwc_body<unsigned int, 3>(
                        x, w, bias, residual, y, size, window, dilation, hasBias, hasResidual, p0, p1);
                else if (narrow)
                    kiln_depthwise_nhwc_body<unsigned int, 0>(
                        x, w, bias, residual, y, size, window, dilation, hasBias, hasResidual, p0, p1);
                else
                    kiln_depthwise_nhwc_body<i64, 0>(
                        x, w, bias, residual, y, size, window, dilation, hasBias, hasResidual, p0, p1);
            }

            """
}
