import KilnIR

/// The fused attention for float16 and bfloat16 operands on tensor cores (`mma.sync` m16n8k16, float32
/// accumulation), in the flash-attention-2 arrangement: a block of 4 warps takes 64 queries of one (batch,
/// head), each warp 16 of them with their Q fragments held in registers; for each tile of 32 keys the block
/// stages K and V (rows padded by 8 elements, so fragment loads hit distinct banks) and, where the mask's
/// layout allows 16-byte copies, the mask's columns for those keys in shared memory, while the next tile loads.
/// Each warp computes its 16 x 32 scores with `mma` (K read with `ldmatrix`), applies scale, mask and
/// causality in float32 (no per-score checks on whole tiles without causality), updates the running row
/// maximum and sum (online softmax), and multiplies the probabilities, rounded to the 16-bit type straight
/// from the score registers, by V (read with `ldmatrix.trans`). The [queries, keys] scores never reach memory.
///
/// Taken when the head sizes are equal and 32, 64 or 128, and every view moves along the head axis in
/// 16-byte aligned runs; other layers use the float32-arithmetic kernel (`CUDAAttention`).
enum CUDAAttentionTensorCore {
    static let headSizes = [32, 64, 128]

    /// Warps per block (16 queries each), keys per tile, the blocks per multiprocessor the registers are
    /// budgeted for, and the tiles in flight (shared-memory stages).
    struct Configuration: Hashable {
        var warps: Int
        var keys: Int
        var blocks: Int
        var stages: Int
    }

    /// Keys from which head size 64 takes 64-key tiles.
    static let longKeys = 512

    /// The configuration for a head size and key length, from the variants `bench/kernels/attention.py` timed
    /// (BENCHMARKS.md, "the tensor-core attention's score loop without branches"): 4 x 32 x 4 x 4 at head size 64
    /// for BERT's and ViT's 128 and 197 keys (64-key tiles 6-13% slower there; more blocks spill registers; 8
    /// warps or 32 queries a warp slower), 64-key tiles from 512 keys (8-11% faster at 512-4096); head size 128
    /// takes 64-key tiles at every length (3-13% faster from 128 keys on, 2% slower at 197).
    static func configuration(headSize: Int, keyLength: Int) -> Configuration {
        switch headSize {
        case ...32: Configuration(warps: 4, keys: 32, blocks: 4, stages: 4)
        case ...64:
            keyLength >= longKeys
                ? Configuration(warps: 4, keys: 64, blocks: 3, stages: 2)
                : Configuration(warps: 4, keys: 32, blocks: 4, stages: 4)
        default: Configuration(warps: 4, keys: 64, blocks: 1, stages: 2)
        }
    }

    /// Every (head size, configuration) the module has a kernel for.
    static var entries: [(headSize: Int, configuration: Configuration)] {
        headSizes.flatMap { d in
            let short = configuration(headSize: d, keyLength: 1)
            let long = configuration(headSize: d, keyLength: longKeys)
            return (short == long ? [short] : [short, long]).map { (d, $0) }
        }
    }

    /// The kernel of a head size and configuration.
    static func function(_ dtype: DType, headSize: Int, _ c: Configuration) -> String {
        "kiln_attention_tc_\(dtype)_d\(headSize)_k\(c.keys)"
    }

    /// Dynamic shared memory: `stages` stages of K and V tiles (rows padded by 8 elements) and of `maskRows` mask
    /// rows.
    static func sharedBytes(headSize: Int, keys: Int, stages: Int, maskRows: Int) -> Int {
        2 * stages * (2 * keys * (headSize + 8) + maskRows * keys)
    }

    /// The launch, or nil when the layer's shape or views do not suit this kernel.
    /// `arguments(maskMode)`: the kernel's arguments with the given `hasMask` value; `maskStrides` are the
    /// mask's strides (batch, head, query, key), nil without a mask.
    static func launch(
        _ layer: FusedAttentionLayer, dtype: DType, maskStrides: [Int]?, arguments: (Int32) -> [CUDAArgument]
    ) -> CUDALaunch? {
        guard dtype == .float16 || dtype == .bfloat16, layer.headSize == layer.valueHeadSize,
            headSizes.contains(layer.headSize)
        else { return nil }
        let views = [layer.query, layer.key, layer.value, layer.output]
        guard
            views.allSatisfy({
                $0.strides[3] == 1 && $0.offset % 8 == 0 && $0.strides[0..<3].allSatisfy { $0 % 8 == 0 }
            })
        else { return nil }
        let c = configuration(headSize: layer.headSize, keyLength: layer.keyLength)
        // Offsets inside a tile of keys are 32-bit.
        guard [layer.key, layer.value].allSatisfy({ $0.strides[2] * c.keys < Int(Int32.max) }) else { return nil }
        let rows = 16 * c.warps
        let mode = maskMode(maskStrides)
        let maskRows = mode == 2 ? (maskStrides?[2] == 0 ? 1 : rows) : 0
        return CUDALaunch(
            source: source(dtype),
            function: function(dtype, headSize: layer.headSize, c),
            grid: CUDADim3((layer.queryLength + rows - 1) / rows, layer.heads, layer.batch),
            block: CUDADim3(32 * c.warps),
            sharedBytes: sharedBytes(headSize: layer.headSize, keys: c.keys, stages: c.stages, maskRows: maskRows),
            arguments: arguments(mode))
    }

    /// The kernel's `hasMask`: 0 without a mask, 2 when the mask's tiles can be copied 16 bytes at a time
    /// (keys adjacent, every other stride a multiple of 8 elements), else 1 (read score by score).
    static func maskMode(_ strides: [Int]?) -> Int32 {
        guard let strides else { return 0 }
        return strides.count == 4 && strides[3] == 1 && strides[0..<3].allSatisfy({ $0 % 8 == 0 }) ? 2 : 1
    }

    /// The module for `dtype` (float16 or bfloat16): one kernel per head size and configuration (`entries`).
    static func source(_ dtype: DType) -> CUDASource {
        let kernels = entries.map { d, c in
            "KILN_ATTENTION_TC(\(d), \(c.warps), \(c.keys), \(c.blocks), \(c.stages))\n"
        }
        let template = (code + kernels.joined())
            .replacingOccurrences(of: "KILN_PTX", with: dtype == .bfloat16 ? "bf16" : "f16")
        return CUDAPrelude.specialized("attention_tc", template, dtype: dtype)
    }

    private static let code = """
        typedef KILN_T T;
        typedef unsigned short u16;

        /* Two floats as one register of two 16-bit values, the lower one first. */
        __device__ __forceinline__ unsigned kiln_pack2(float lo, float hi) {
            const T a = lo, b = hi;
            return (unsigned)a.bits | ((unsigned)b.bits << 16);
        }

        /* c (16x8 float) += a (16x16, row-major fragment) * b (16x8, column-major fragment). */
        __device__ __forceinline__ void kiln_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
            asm volatile(
                "mma.sync.aligned.m16n8k16.row.col.f32.KILN_PTX.KILN_PTX.f32 "
                "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
        }

        /* 16 bytes from global to shared memory without passing through registers; 0 source bytes writes zeros. */
        __device__ __forceinline__ void kiln_cp16(u16* dst, const u16* src, int bytes) {
            const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(d), "l"(src), "r"(bytes));
        }
        __device__ __forceinline__ void kiln_cp_commit() { asm volatile("cp.async.commit_group;"); }
        template <int N> __device__ __forceinline__ void kiln_cp_wait() {
            asm volatile("cp.async.wait_group %0;" :: "n"(N));
        }
        /* 2^x (approximate, flushed to zero below the normal range; 2^-inf = 0). */
        __device__ __forceinline__ float kiln_exp2(float x) {
            float y;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
            return y;
        }

        /* Two adjacent 16-bit mask values (one 32-bit load from shared memory) as floats. */
        __device__ __forceinline__ void kiln_mask_pair(const u16* p, float (&to)[2]) {
            const unsigned pair = *(const unsigned*)p;
            T m0, m1;
            m0.bits = (u16)(pair & 0xffffu);
            m1.bits = (u16)(pair >> 16);
            to[0] = (float)m0;
            to[1] = (float)m1;
        }

        /* One warp's tile of scores s (rows ra and ra + 8 of 16 queries, BK keys from k0) scaled, masked (MASK as
           in kiln_attention_tc_body; M: the staged mask tile), with CHECK keys past Sk and causally hidden keys set
           to -inf, and each row's largest score folded into top. */
        template <bool CHECK, int MASK, int BK>
        __device__ __forceinline__ void kiln_attention_scores(
            float (&s)[BK / 8][4], float (&top)[2], const u16* M, const T* __restrict__ mask, const KilnDims& mv,
            i64 mBase, int k0, int q0, int ra, int t, int Sq, int Sk, int causal, float scale)
        {
            const float NEG_INF = __int_as_float(0xff800000);
            #pragma unroll
            for (int j = 0; j < BK / 8; ++j) {
                const int key = k0 + j * 8 + 2 * t;
                float add[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
                if (MASK == 3) {
                    kiln_mask_pair(M + j * 8 + 2 * t, add[0]);
                    add[1][0] = add[0][0];
                    add[1][1] = add[0][1];
                }
                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int row = ra + 8 * r;
                    if (MASK == 2) {
                        kiln_mask_pair(M + (row - q0) * BK + j * 8 + 2 * t, add[r]);
                    } else if (MASK == 1 && row < Sq) {
                        const T* mr = mask + mBase + (i64)row * mv.v[2];
                        if (!CHECK || key < Sk) add[r][0] = (float)mr[(i64)key * mv.v[3]];
                        if (!CHECK || key + 1 < Sk) add[r][1] = (float)mr[(i64)(key + 1) * mv.v[3]];
                    }
                    float x0 = fmaf(s[j][2 * r], scale, add[r][0]);
                    float x1 = fmaf(s[j][2 * r + 1], scale, add[r][1]);
                    if (CHECK) {
                        if (!(key < Sk && !(causal && key > row))) x0 = NEG_INF;
                        if (!(key + 1 < Sk && !(causal && key + 1 > row))) x1 = NEG_INF;
                    }
                    s[j][2 * r] = x0;
                    s[j][2 * r + 1] = x1;
                }
            }
            /* Each row's maximum as a tree, not a chain of dependent instructions. */
            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                float part[BK / 8];
                #pragma unroll
                for (int j = 0; j < BK / 8; ++j) part[j] = fmaxf(s[j][2 * r], s[j][2 * r + 1]);
                #pragma unroll
                for (int w = 1; w < BK / 8; w *= 2) {
                    #pragma unroll
                    for (int j = 0; j + w < BK / 8; j += 2 * w) part[j] = fmaxf(part[j], part[j + w]);
                }
                top[r] = fmaxf(top[r], part[0]);
            }
        }


        /* size: B, H, Sq, Sk, D, Dv. Views: offset, then strides of batch, head, sequence, head axis (1 here); the
           mask's strides of batch, head, query, key. MASK 0: no mask; 1: read from global memory score by score;
           2: its tile is staged in shared memory with the K/V tile (key stride 1, other strides multiples of 8), a
           row per query; 3: staged, one row every query shares. A block of WARPS warps takes 16 * WARPS queries;
           tiles of BK keys; dynamic shared memory: a ring of STAGES stages of K, V and mask, the next STAGES - 1
           tiles loading (cp.async) while one is used, so short sequences have all their keys in flight at once.
           Scores and the running maximum are in natural units (scale times Q.K plus the mask, one multiply-add);
           each probability is one exponential of a multiply-add, exp2(x log2(e) - max log2(e)). The host keeps
           BK times the K and V sequence strides below 2^31 (tile offsets are 32-bit). */
        template <int D, int WARPS, int BK, int STAGES, int MASK>
        __device__ __forceinline__ void kiln_attention_tc_body(
            const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,
            T* __restrict__ out, const KilnDims& size, const KilnDims& qv, const KilnDims& kv, const KilnDims& vv,
            const KilnDims& ov, const KilnDims& mv, float scale, int zeroMasked, int causal, int group)
        {
            const int KS = D + 8;        /* row stride of the K and V tiles, in elements: conflict-free fragments */
            const int QR = 16 * WARPS;   /* queries per block */
            const int NT = 32 * WARPS;   /* threads per block */
            const int MR = MASK == 2 ? QR : MASK == 3 ? 1 : 0;   /* staged mask rows */
            extern __shared__ __align__(16) u16 kiln_attention_shared[];
            u16* Ks = kiln_attention_shared;
            u16* Vs = Ks + STAGES * BK * KS;
            u16* Ms = Vs + STAGES * BK * KS;
            const int q0 = blockIdx.x * QR;
            const int Sq = (int)size.v[2], Sk = (int)size.v[3];
            const int b = blockIdx.z, h = blockIdx.y;
            const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
            const int g = lane >> 2, t = lane & 3;
            const int ra = q0 + warp * 16 + g, rb = ra + 8;
            const bool idle = q0 + warp * 16 >= Sq;
            const int hk = h / group;
            const u16* qb = (const u16*)q;
            const u16* kb = (const u16*)k + kv.v[0] + b * kv.v[1] + hk * kv.v[2];
            const u16* vb = (const u16*)v + vv.v[0] + b * vv.v[1] + hk * vv.v[2];
            const i64 qBase = qv.v[0] + b * qv.v[1] + h * qv.v[2];
            const i64 mBase = b * mv.v[0] + h * mv.v[1];
            const int kStride = (int)kv.v[3], vStride = (int)vv.v[3];
            const float LOG2E = 1.4426950408889634f;
            const float NEG_INF = __int_as_float(0xff800000);

            unsigned qa[D / 16][4];
            #pragma unroll
            for (int s = 0; s < D / 16; ++s) {
                const int c0 = s * 16 + 2 * t, c1 = c0 + 8;
                const u16* pa = qb + qBase + (i64)ra * qv.v[3];
                const u16* pb = qb + qBase + (i64)rb * qv.v[3];
                qa[s][0] = ra < Sq ? *(const unsigned*)(pa + c0) : 0u;
                qa[s][1] = rb < Sq ? *(const unsigned*)(pb + c0) : 0u;
                qa[s][2] = ra < Sq ? *(const unsigned*)(pa + c1) : 0u;
                qa[s][3] = rb < Sq ? *(const unsigned*)(pb + c1) : 0u;
            }
            float o[D / 8][4];
            #pragma unroll
            for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
            float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f};
            const int lastQuery = min(Sq, q0 + QR) - 1;
            int tiles = (Sk + BK - 1) / BK;
            if (causal) tiles = min(tiles, lastQuery / BK + 1);

            /* Rows of keys k0.. of K and V, and the mask's columns, into stage `stage` (zeros past Sk and Sq). Each
               thread copies the same chunks of every tile: 16 bytes at (row, column) = (e / (D / 8), e % (D / 8) * 8),
               whose offsets inside a tile are computed once. */
            const int CH = (BK * (D / 8) + NT - 1) / NT;   /* K (and V) chunks per thread and tile */
            int chunkRow[CH], kOffset[CH], vOffset[CH], sOffset[CH];
            #pragma unroll
            for (int i = 0; i < CH; ++i) {
                const int e = threadIdx.x + i * NT;
                const int r = e / (D / 8), c = (e % (D / 8)) * 8;
                chunkRow[i] = BK * (D / 8) % NT == 0 || e < BK * (D / 8) ? r : BK;
                kOffset[i] = r * kStride + c;
                vOffset[i] = r * vStride + c;
                sOffset[i] = r * KS + c;
            }
            auto load = [&](int stage, int k0) {
                const u16* kt = kb + (i64)k0 * kStride;
                const u16* vt = vb + (i64)k0 * vStride;
                #pragma unroll
                for (int i = 0; i < CH; ++i) {
                    if (chunkRow[i] < BK) {
                        const bool inside = k0 + chunkRow[i] < Sk;
                        kiln_cp16(Ks + stage * BK * KS + sOffset[i], kt + (inside ? kOffset[i] : 0), inside ? 16 : 0);
                        kiln_cp16(Vs + stage * BK * KS + sOffset[i], vt + (inside ? vOffset[i] : 0), inside ? 16 : 0);
                    }
                }
                if (MR > 0) {
                    #pragma unroll
                    for (int i = 0; i < (MR * (BK / 8) + NT - 1) / NT; ++i) {
                        const int e = threadIdx.x + i * NT;
                        if (MR * (BK / 8) % NT == 0 || e < MR * (BK / 8)) {
                            const int r = e / (BK / 8), c = (e % (BK / 8)) * 8;
                            const int keys = Sk - (k0 + c);
                            const bool inside = keys > 0 && q0 + r < Sq;
                            const i64 at = inside ? mBase + (i64)(q0 + r) * mv.v[2] + k0 + c : 0;
                            kiln_cp16(Ms + (stage * MR + r) * BK + c, (const u16*)mask + at, inside ? 2 * min(keys, 8) : 0);
                        }
                    }
                }
            };

            /* One commit group per tile (empty past the last), so waiting for tile `it` is always wait_group
               STAGES - 2. The barrier after the wait also tells every warp is done with the stage the next load
               overwrites, the one read in the previous iteration. */
            #pragma unroll
            for (int p = 0; p < STAGES - 1; ++p) {
                if (p < tiles) load(p, p * BK);
                kiln_cp_commit();
            }
            for (int it = 0; it < tiles; ++it) {
                const int k0 = it * BK;
                const int stage = it % STAGES;
                kiln_cp_wait<STAGES - 2>();
                __syncthreads();
                const int ahead = it + STAGES - 1;
                if (ahead < tiles) load(ahead % STAGES, ahead * BK);
                kiln_cp_commit();
                /* A warp whose queries all lie past Sq (the last block of a length like 197) only loads and waits. */
                if (idle) continue;
                const u16* K = Ks + stage * BK * KS;
                const u16* V = Vs + stage * BK * KS;
                const u16* M = Ms + stage * MR * BK;

                float s[BK / 8][4];
                #pragma unroll
                for (int j = 0; j < BK / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
                #pragma unroll
                for (int st = 0; st < D / 16; ++st) {
                    #pragma unroll
                    /* ldmatrix: four 8x8 tiles of K, the B fragments of two 8-key column tiles. */
                    for (int j = 0; j < BK / 8; j += 2) {
                        const u16* kr = K + ((j + (lane >> 4)) * 8 + (lane & 7)) * KS + st * 16 + ((lane >> 3) & 1) * 8;
                        unsigned b0, b1, b2, b3;
                        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                            : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"((unsigned)__cvta_generic_to_shared(kr)));
                        kiln_mma(s[j], qa[st], b0, b1);
                        kiln_mma(s[j + 1], qa[st], b2, b3);
                    }
                }

                /* Scale and mask; keys past Sk and causally hidden keys become -inf. A whole tile without causality needs
                   no per-score checks, so the two cases are separate code. */
                float top[2] = {NEG_INF, NEG_INF};
                if (k0 + BK <= Sk && !causal)
                    kiln_attention_scores<false, MASK, BK>(s, top, M, mask, mv, mBase, k0, q0, ra, t, Sq, Sk, causal, scale);
                else
                    kiln_attention_scores<true, MASK, BK>(s, top, M, mask, mv, mBase, k0, q0, ra, t, Sq, Sk, causal, scale);

                /* Online softmax: the new running maximum (as -shift in log2 units), the factor for what was summed
                   before, then each probability as one exponential. */
                float shift[2], rescale[2], sum[2] = {0.f, 0.f};
                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    top[r] = fmaxf(top[r], __shfl_xor_sync(0xffffffffu, top[r], 1));
                    top[r] = fmaxf(top[r], __shfl_xor_sync(0xffffffffu, top[r], 2));
                    const float next = fmaxf(m[r], top[r]);
                    shift[r] = next == NEG_INF ? 0.f : next * LOG2E;
                    rescale[r] = kiln_exp2(fmaf(m[r], LOG2E, -shift[r]));
                    m[r] = next;
                }
                float part[BK / 8][2];
                #pragma unroll
                for (int j = 0; j < BK / 8; ++j) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) s[j][e] = kiln_exp2(fmaf(s[j][e], LOG2E, -shift[e >> 1]));
                    part[j][0] = s[j][0] + s[j][1];
                    part[j][1] = s[j][2] + s[j][3];
                }
                /* Each row's sum as a tree. */
                #pragma unroll
                for (int w = 1; w < BK / 8; w *= 2) {
                    #pragma unroll
                    for (int j = 0; j + w < BK / 8; j += 2 * w) {
                        part[j][0] += part[j + w][0];
                        part[j][1] += part[j + w][1];
                    }
                }
                sum[0] = part[0][0];
                sum[1] = part[0][1];
                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
                    sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
                    l[r] = l[r] * rescale[r] + sum[r];
                }
                /* The output so far only changes when some row's maximum moved (rescale is exactly 1 otherwise). */
                if (__any_sync(0xffffffffu, rescale[0] != 1.f || rescale[1] != 1.f)) {
                    #pragma unroll
                    for (int n = 0; n < D / 8; ++n) {
                        o[n][0] *= rescale[0]; o[n][1] *= rescale[0];
                        o[n][2] *= rescale[1]; o[n][3] *= rescale[1];
                    }
                }
                /* P (16 x 16 keys, from the score registers) times V: ldmatrix.trans reads V's rows (keys) as the
                   column-major B fragments of two 8-wide column tiles at once. */
                #pragma unroll
                for (int kk = 0; kk < BK / 16; ++kk) {
                    unsigned pa[4];
                    pa[0] = kiln_pack2(s[2 * kk][0], s[2 * kk][1]);
                    pa[1] = kiln_pack2(s[2 * kk][2], s[2 * kk][3]);
                    pa[2] = kiln_pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                    pa[3] = kiln_pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                    #pragma unroll
                    for (int n = 0; n < D / 8; n += 2) {
                        const u16* vr = V + (kk * 16 + (lane & 15)) * KS + n * 8 + (lane >> 4) * 8;
                        const unsigned address = (unsigned)__cvta_generic_to_shared(vr);
                        unsigned b0, b1, b2, b3;
                        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                            : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(address));
                        kiln_mma(o[n], pa, b0, b1);
                        kiln_mma(o[n + 1], pa, b2, b3);
                    }
                }
            }

            const i64 oBase = ov.v[0] + b * ov.v[1] + h * ov.v[2];
            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = r == 0 ? ra : rb;
                if (row >= Sq) continue;
                const bool empty = !(l[r] > 0.f);  /* every key masked, or a NaN */
                const float inv = empty ? 0.f : 1.f / l[r];
                const float fill = zeroMasked ? 0.f : __int_as_float(0x7fc00000);
                u16* orow = (u16*)out + oBase + (i64)row * ov.v[3];
                #pragma unroll
                for (int n = 0; n < D / 8; ++n) {
                    const float y0 = empty ? fill : o[n][2 * r] * inv;
                    const float y1 = empty ? fill : o[n][2 * r + 1] * inv;
                    *(unsigned*)(orow + n * 8 + 2 * t) = kiln_pack2(y0, y1);
                }
            }
        }

        /* hasMask (the launch's mask mode): 0 none, 1 read score by score, 2 staged in shared memory. */
        template <int D, int WARPS, int BK, int STAGES>
        __device__ __forceinline__ void kiln_attention_tc(
            const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,
            T* __restrict__ out, const KilnDims& size, const KilnDims& qv, const KilnDims& kv, const KilnDims& vv,
            const KilnDims& ov, const KilnDims& mv, float scale, int hasMask, int zeroMasked, int causal, int group)
        {
            if (hasMask == 0)
                kiln_attention_tc_body<D, WARPS, BK, STAGES, 0>(q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale,
                    zeroMasked, causal, group);
            else if (hasMask == 1)
                kiln_attention_tc_body<D, WARPS, BK, STAGES, 1>(q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale,
                    zeroMasked, causal, group);
            else if (mv.v[2] != 0)
                kiln_attention_tc_body<D, WARPS, BK, STAGES, 2>(q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale,
                    zeroMasked, causal, group);
            else
                kiln_attention_tc_body<D, WARPS, BK, STAGES, 3>(q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale,
                    zeroMasked, causal, group);
        }

        #define KILN_ATTENTION_TC(D, WARPS, BK, BLOCKS, STAGES) \\
            extern "C" __global__ void __launch_bounds__(32 * WARPS, BLOCKS) kiln_attention_tc_KILN_NAME_d##D##_k##BK( \\
                const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, \\
                const T* __restrict__ mask, T* __restrict__ out, KilnDims size, KilnDims qv, KilnDims kv, \\
                KilnDims vv, KilnDims ov, KilnDims mv, float scale, int hasMask, int zeroMasked, int vector, \\
                int causal, int group) \\
            { \\
                kiln_attention_tc<D, WARPS, BK, STAGES>(q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale, \\
                    hasMask, zeroMasked, causal, group); \\
            }


        """
}
