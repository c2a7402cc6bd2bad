import KilnIR

/// The optimizer's fused attention as one kernel in the flash-attention style: a block takes 64 queries of one
/// (batch, head) (32 when 64 would leave the GPU's multiprocessors idle), walks the keys 32 at a time, and keeps the running row maximum, row sum and output in
/// registers (online softmax), so the [queries, keys] scores never reach device memory. Q, K, V and the output
/// are read and written in place through the layer's views (any strides; 16-byte vector accesses where the
/// head axis is contiguous and aligned). Operands may be stored as float16 or bfloat16; the arithmetic is FP32
/// throughout, and the mask is added in FP32 before the exponent.
enum CUDAAttention {
    static let blockRows = 64
    /// Below this many blocks of 64 queries, blocks take 32 (132 multiprocessors on an H100 SXM).
    static let smallGrid = 2 * 132
    static let blockKeys = 32
    static let threads = 128
    static let headTiles = [32, 64, 128, 256]

    /// `group` query heads share one K/V head (grouped-query attention); `causal` masks keys after the query's
    /// position.
    static func lower(
        _ layer: FusedAttentionLayer, _ info: CUDANodeInfo, causal: Bool = false, group: Int = 1
    )
        throws -> CUDALowering
    {
        let dtype = try info.input(0).dtype
        guard [.float32, .float16, .bfloat16].contains(dtype) else {
            throw KilnError.unsupported("fused attention on CUDA takes float32, float16 or bfloat16, not \(dtype)")
        }
        for index in 1..<min(info.inputCount, 4) where try info.hasInput(index) && info.input(index).dtype != dtype {
            throw KilnError.typeMismatch("fused attention input \(index) is not \(dtype.onnxName) like Q")
        }
        let width = max(layer.headSize, layer.valueHeadSize)
        guard let tile = headTiles.first(where: { $0 >= width }) else {
            throw KilnError.unsupported("fused attention on CUDA takes head sizes up to \(headTiles.last ?? 0)")
        }
        let views = [layer.query, layer.key, layer.value, layer.output]
        guard views.allSatisfy({ $0.strides.count == 4 }) else {
            throw KilnError.invalidArgument("fused attention views need 4 strides")
        }
        let hasMask = info.hasInput(3)
        if hasMask, try Broadcast.shape(try info.inputShape(3), layer.scoreShape) != layer.scoreShape {
            throw KilnError.unsupported("attention mask \(try info.inputShape(3)) for scores \(layer.scoreShape)")
        }
        let maskStrides =
            hasMask ? Broadcast.strides(of: try info.inputShape(3), broadcastTo: layer.scoreShape) : [0, 0, 0, 0]
        // Bit i: view i (Q, K, V, output) can move 4 elements at a time along the head axis.
        var vector: Int32 = 0
        for (i, (view, size)) in zip(views, [layer.headSize, layer.headSize, layer.valueHeadSize, layer.valueHeadSize])
            .enumerated()
        where view.strides[3] == 1 && size % 4 == 0 && view.offset % 4 == 0
            && view.strides[0..<3].allSatisfy({ $0 % 4 == 0 })
        {
            vector |= 1 << i
        }
        func dims(_ v: FusedAttentionLayer.View) -> CUDAArgument { .dims([v.offset] + v.strides) }
        let heads = layer.batch * layer.heads
        let rows = (layer.queryLength + blockRows - 1) / blockRows * heads < smallGrid ? blockRows / 2 : blockRows
        let grid = CUDADim3((layer.queryLength + rows - 1) / rows, layer.heads, layer.batch)
        guard layer.batch <= 65535, layer.heads <= 65535 else {
            throw KilnError.unsupported("fused attention on CUDA takes batch and heads up to 65535")
        }
        func arguments(_ maskMode: Int32) -> [CUDAArgument] {
            [
                .pointer(.input(0)), .pointer(.input(1)), .pointer(.input(2)),
                .pointer(hasMask ? .input(3) : .input(0)), .pointer(.output(0)),
                .dims([
                    layer.batch, layer.heads, layer.queryLength, layer.keyLength, layer.headSize, layer.valueHeadSize,
                ]),
                dims(layer.query), dims(layer.key), dims(layer.value), dims(layer.output), .dims(maskStrides),
                .float32(layer.scale), .int32(maskMode), .int32(layer.zeroMaskedRows ? 1 : 0),
                .int32(vector), .int32(causal ? 1 : 0), .int32(Int32(group)),
            ]
        }
        // 16-bit operands in aligned head-axis runs: the tensor-core kernel.
        if let tensorCore = CUDAAttentionTensorCore.launch(
            layer, dtype: dtype, maskStrides: hasMask ? maskStrides : nil, arguments: arguments)
        {
            return CUDALowering(.launch(tensorCore))
        }
        return CUDALowering(
            .launch(
                CUDALaunch(
                    source: source(dtype),
                    function: "kiln_attention_\(dtype)_d\(tile)_r\(rows / 16)",
                    grid: grid, block: CUDADim3(threads), sharedBytes: sharedBytes(tile, rows: rows),
                    arguments: arguments(hasMask ? 1 : 0))))
    }

    /// ONNX Attention (float32, no KV cache, no softcap or window, only the first output) on the same kernel:
    /// 4-D [batch, heads, sequence, head] or 3-D [batch, sequence, heads · head] operands become views, grouped
    /// K/V heads a head mapping. A fully masked row gives zeros, as the operator's reference does.
    static func lower(_ layer: AttentionLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        guard (4..<max(4, info.inputCount)).allSatisfy({ !info.hasInput($0) }) else {
            throw KilnError.unsupported("attention with a KV cache or non-pad lengths on CUDA")
        }
        guard layer.softcap == 0, layer.leftWindow < 0, layer.rightWindow < 0 else {
            throw KilnError.unsupported("attention with softcap or a sliding window on CUDA")
        }
        guard info.node.outputs.dropFirst().allSatisfy(\.isEmpty) else {
            throw KilnError.unsupported("attention's present key/value or score outputs on CUDA")
        }
        let (q, k, v) = (try info.inputShape(0), try info.inputShape(1), try info.inputShape(2))
        guard q.count == k.count, q.count == v.count, q.count == 3 || q.count == 4 else {
            throw KilnError.unsupported("attention operands of rank \(q.count) on CUDA")
        }
        let qHeads = q.count == 4 ? q[1] : layer.qNumHeads ?? 0
        let kvHeads = q.count == 4 ? k[1] : layer.kvNumHeads ?? 0
        guard qHeads > 0, kvHeads > 0, qHeads % kvHeads == 0 else {
            throw KilnError.shapeMismatch("attention heads \(qHeads) and \(kvHeads) do not group")
        }
        typealias View = FusedAttentionLayer.View
        /// The view of a [batch, heads, length, size] operand stored 4-D or 3-D.
        func view(_ shape: [Int], heads: Int) -> (View, length: Int, size: Int) {
            if shape.count == 4 {
                return (View(strides: Broadcast.strides(shape)), shape[2], shape[3])
            }
            let size = shape[2] / heads
            return (View(strides: [shape[1] * shape[2], size, shape[2], 1]), shape[1], size)
        }
        let qv = view(q, heads: qHeads)
        let kv = view(k, heads: kvHeads)
        let vv = view(v, heads: kvHeads)
        let out = try info.outputShape(0)
        let ov = view(out, heads: qHeads)
        let fused = FusedAttentionLayer(
            batch: q[0], heads: qHeads, queryLength: qv.length, keyLength: kv.length, headSize: qv.size,
            valueHeadSize: vv.size, query: qv.0, key: kv.0, value: vv.0, output: ov.0, outputShape: out,
            scale: layer.scale ?? 1 / Float(qv.size).squareRoot(), zeroMaskedRows: true)
        return try lower(fused, info, causal: layer.isCausal, group: qHeads / kvHeads)
    }

    /// Q, K and V tiles with rows padded by 4 floats, and the probabilities tile padded by 8.
    static func sharedBytes(_ tile: Int, rows: Int = blockRows) -> Int {
        ((rows + 2 * blockKeys) * (tile + 4) + rows * (blockKeys + 8)) * 4
    }

    /// The module for Q, K, V, mask and output stored as `dtype` (float32, float16 or bfloat16); the tiles,
    /// scores, softmax and sums are float32 in every case.
    static func source(_ dtype: DType) -> CUDASource { CUDAPrelude.specialized("attention", code, dtype: dtype) }

    private static let code = """
                #define KILN_BN 32
        #define KILN_TX 8                 /* threads across a key tile: 4 keys each */
        #define KILN_TY 16                /* row groups: R query rows each (rows ty, ty+16, ...) */
        #define KILN_PS (KILN_BN + 8)     /* row stride of the probabilities tile */

        typedef KILN_T T;
        /* Four consecutive elements as stored: 16 bytes of float32, 8 of a 16-bit type. */
        struct __align__(sizeof(T) * 4) KilnQuad { T x, y, z, w; };

        /* Loads `rows` rows of `width` elements (zero beyond `valid` rows or `size` columns) into a padded float
           tile. */
        template <int DT>
        __device__ __forceinline__ void kiln_attention_tile(
            float* tile, const T* __restrict__ src, i64 base, i64 rowStride, i64 colStride, int rows, int valid,
            int size, bool vector)
        {
            const int stride = DT + 4;
            if (vector) {
                for (int e = threadIdx.x; e < rows * (DT / 4); e += blockDim.x) {
                    const int r = e / (DT / 4), c = (e % (DT / 4)) * 4;
                    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
                    if (r < valid && c < size) {
                        const KilnQuad t = *(const KilnQuad*)(src + base + r * rowStride + c);
                        v = make_float4(t.x, t.y, t.z, t.w);
                    }
                    *(float4*)(tile + r * stride + c) = v;
                }
            } else {
                for (int e = threadIdx.x; e < rows * DT; e += blockDim.x) {
                    const int r = e / DT, c = e % DT;
                    tile[r * stride + c] =
                        (r < valid && c < size) ? (float)src[base + r * rowStride + c * colStride] : 0.f;
                }
            }
        }

        /* size: B, H, Sq, Sk, D, Dv. Views: offset, then strides of batch, head, sequence, head axis.
           A block takes 16·R queries: R = 4 normally, 2 when the grid would be too small to fill the GPU. */
        template <int DT, int R>
        __device__ __forceinline__ void kiln_attention(
            const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
            const T* __restrict__ mask, T* __restrict__ out, const KilnDims& size, const KilnDims& qv,
            const KilnDims& kv, const KilnDims& vv, const KilnDims& ov, const KilnDims& mv, float scale, int hasMask,
            int zeroMasked, int vector, int causal, int group)
        {
            extern __shared__ float4 kiln_attention_shared[];
            float* Qs = (float*)kiln_attention_shared;
            float* Ks = Qs + 16 * R * (DT + 4);
            float* Vs = Ks + KILN_BN * (DT + 4);
            float* Ps = Vs + KILN_BN * (DT + 4);
            const int Sq = (int)size.v[2], Sk = (int)size.v[3], D = (int)size.v[4], Dv = (int)size.v[5];
            const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * 16 * R;
            const int tx = threadIdx.x % KILN_TX, ty = threadIdx.x / KILN_TX;
            const float LOG2E = 1.4426950408889634f;
            const float NEG_INF = __int_as_float(0xff800000);

            kiln_attention_tile<DT>(Qs, q, qv.v[0] + b * qv.v[1] + h * qv.v[2] + (i64)q0 * qv.v[3], qv.v[3], qv.v[4],
                16 * R, Sq - q0, D, vector & 1);
            const int hk = h / group;  /* the K/V head of this query head */
            const i64 kBase = kv.v[0] + b * kv.v[1] + hk * kv.v[2];
            const i64 vBase = vv.v[0] + b * vv.v[1] + hk * vv.v[2];
            const i64 mBase = b * mv.v[0] + h * mv.v[1];

            float o[R][DT / 8];
            float m[R], l[R];
            #pragma unroll
            for (int r = 0; r < R; ++r) {
                m[r] = NEG_INF;
                l[r] = 0.f;
                #pragma unroll
                for (int c = 0; c < DT / 8; ++c) o[r][c] = 0.f;
            }

            for (int k0 = 0; k0 < Sk; k0 += KILN_BN) {
                const int keys = min(KILN_BN, Sk - k0);
                __syncthreads();
                kiln_attention_tile<DT>(Ks, k, kBase + (i64)k0 * kv.v[3], kv.v[3], kv.v[4], KILN_BN, keys, D, vector & 2);
                kiln_attention_tile<DT>(Vs, v, vBase + (i64)k0 * vv.v[3], vv.v[3], vv.v[4], KILN_BN, keys, Dv, vector & 4);
                __syncthreads();

                float s[R][4];
                #pragma unroll
                for (int r = 0; r < R; ++r)
                    #pragma unroll
                    for (int c = 0; c < 4; ++c) s[r][c] = 0.f;
                #pragma unroll 4
                for (int d = 0; d < DT; d += 4) {
                    float4 a[R], w[4];
                    #pragma unroll
                    for (int r = 0; r < R; ++r) a[r] = *(const float4*)(Qs + (ty + 16 * r) * (DT + 4) + d);
                    #pragma unroll
                    for (int c = 0; c < 4; ++c) w[c] = *(const float4*)(Ks + (tx + 8 * c) * (DT + 4) + d);
                    #pragma unroll
                    for (int r = 0; r < R; ++r)
                        #pragma unroll
                        for (int c = 0; c < 4; ++c) {
                            s[r][c] = fmaf(a[r].x, w[c].x, s[r][c]);
                            s[r][c] = fmaf(a[r].y, w[c].y, s[r][c]);
                            s[r][c] = fmaf(a[r].z, w[c].z, s[r][c]);
                            s[r][c] = fmaf(a[r].w, w[c].w, s[r][c]);
                        }
                }

                #pragma unroll
                for (int r = 0; r < R; ++r) {
                    const int i = q0 + ty + 16 * r;
                    float top = NEG_INF;
                    #pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        const int j = tx + 8 * c;
                        float x = NEG_INF;
                        if (j < keys && !(causal && k0 + j > i)) {
                            x = s[r][c] * scale;
                            if (hasMask && i < Sq) x += (float)mask[mBase + i * mv.v[2] + (i64)(k0 + j) * mv.v[3]];
                        }
                        s[r][c] = x;
                        top = fmaxf(top, x);
                    }
                    #pragma unroll
                    for (int lane = 1; lane < KILN_TX; lane <<= 1) top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, lane));
                    const float next = fmaxf(m[r], top);
                    const float shift = next == NEG_INF ? 0.f : next;
                    const float rescale = exp2f((m[r] - shift) * LOG2E);
                    float sum = 0.f;
                    #pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        const float p = exp2f((s[r][c] - shift) * LOG2E);
                        sum += p;
                        Ps[(ty + 16 * r) * KILN_PS + tx + 8 * c] = p;
                    }
                    #pragma unroll
                    for (int lane = 1; lane < KILN_TX; lane <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, lane);
                    l[r] = l[r] * rescale + sum;
                    m[r] = next;
                    #pragma unroll
                    for (int c = 0; c < DT / 8; ++c) o[r][c] *= rescale;
                }
                __syncthreads();

                for (int j = 0; j < keys; j += 4) {
                    float4 p[R];
                    #pragma unroll
                    for (int r = 0; r < R; ++r) p[r] = *(const float4*)(Ps + (ty + 16 * r) * KILN_PS + j);
                    #pragma unroll
                    for (int jj = 0; jj < 4; ++jj) {
                        #pragma unroll
                        for (int g = 0; g < DT / 32; ++g) {
                            const float4 w = *(const float4*)(Vs + (j + jj) * (DT + 4) + 32 * g + 4 * tx);
                            #pragma unroll
                            for (int r = 0; r < R; ++r) {
                                const float pr = jj == 0 ? p[r].x : jj == 1 ? p[r].y : jj == 2 ? p[r].z : p[r].w;
                                o[r][4 * g + 0] = fmaf(pr, w.x, o[r][4 * g + 0]);
                                o[r][4 * g + 1] = fmaf(pr, w.y, o[r][4 * g + 1]);
                                o[r][4 * g + 2] = fmaf(pr, w.z, o[r][4 * g + 2]);
                                o[r][4 * g + 3] = fmaf(pr, w.w, o[r][4 * g + 3]);
                            }
                        }
                    }
                }
            }

            const i64 oBase = ov.v[0] + b * ov.v[1] + h * ov.v[2];
            #pragma unroll
            for (int r = 0; r < R; ++r) {
                const int i = q0 + ty + 16 * r;
                if (i >= Sq) continue;
                const bool empty = !(l[r] > 0.f);  /* every key masked, or a NaN */
                const float inv = empty ? 0.f : 1.f / l[r];
                const float fill = zeroMasked ? 0.f : __int_as_float(0x7fc00000);
                T* row = out + oBase + i * ov.v[3];
                #pragma unroll
                for (int g = 0; g < DT / 32; ++g) {
                    const int c = 32 * g + 4 * tx;
                    if (c >= Dv) continue;
                    float4 y;
                    y.x = empty ? fill : o[r][4 * g + 0] * inv;
                    y.y = empty ? fill : o[r][4 * g + 1] * inv;
                    y.z = empty ? fill : o[r][4 * g + 2] * inv;
                    y.w = empty ? fill : o[r][4 * g + 3] * inv;
                    if (vector & 8) {
                        KilnQuad t;
                        t.x = y.x; t.y = y.y; t.z = y.z; t.w = y.w;
                        *(KilnQuad*)(row + c) = t;
                    } else {
                        const float e[4] = {y.x, y.y, y.z, y.w};
                        for (int t = 0; t < 4 && c + t < Dv; ++t) row[(i64)(c + t) * ov.v[4]] = e[t];
                    }
                }
            }
        }

        #define KILN_ATTENTION(DT, R) \\
            extern "C" __global__ void __launch_bounds__(128) kiln_attention_KILN_NAME_d##DT##_r##R( \\
                const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, \\
                const T* __restrict__ mask, T* __restrict__ out, KilnDims size, KilnDims qv, KilnDims kv, \\
                KilnDims vv, KilnDims ov, KilnDims mv, float scale, int hasMask, int zeroMasked, int vector, \\
                int causal, int group) \\
            { \\
                kiln_attention<DT, R>( \\
                    q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale, hasMask, zeroMasked, vector, causal, group); \\
            }

        KILN_ATTENTION(32, 2)
        KILN_ATTENTION(32, 4)
        KILN_ATTENTION(64, 2)
        KILN_ATTENTION(64, 4)
        KILN_ATTENTION(128, 2)
        KILN_ATTENTION(128, 4)
        KILN_ATTENTION(256, 2)
        KILN_ATTENTION(256, 4)

        """
}
