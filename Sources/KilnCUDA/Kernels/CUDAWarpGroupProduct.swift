import KilnIR

/// Kiln's own product kernel for Hopper (sm_90a): `C = act(A·B + bias)` on the warpgroup tensor-core
/// instructions (`wgmma.mma_async`, 16-bit operands, float32 accumulation), so that an epilogue cuBLASLt
/// does not have (the erf form of GELU above all) runs on the accumulators instead of as another pass over
/// the output.
///
/// Persistent blocks of three warpgroups: one thread of the first loads 128 x 64 tiles of A and 64 x BN
/// tiles of B with the tensor memory accelerator (TMA, 128-byte swizzle, the layout the instructions read)
/// into a ring of STAGES shared-memory buffers guarded by mbarriers; the other two multiply with
/// `m64nBNk16` instructions whose operands come straight from shared memory, then apply bias and activation
/// in float32 and store whole tiles as 16-byte runs. A is [M, K] row-major; B is [N, K] row-major (K
/// innermost, `TB` 0) or [K, N] row-major (N innermost, `TB` 1); C is [M, N] row-major. TMA zero-fills
/// what lies past the matrix edges; edge tiles store element pairs with bounds checks. Needs K, N and the
/// leading dimensions multiples of 8 elements and 16-byte aligned base addresses (the tensor maps' rules).
enum CUDAWarpGroupProduct {
    static let rowsPerBlock = 128
    static let depth = 64
    static let threads = 384
    /// Tile columns and shared-memory buffers: 128 x 256 tiles through 4 buffers (213 KiB of shared memory),
    /// the fastest of the variants `bench/kernels/product.py` timed on BERT's and ViT's FFN1 shapes.
    static let tileColumns = 256
    static let stages = 4
    /// Below this many rows the persistent grid does not fill an H100 and cuBLASLt plus a pointwise pass was
    /// faster (128 rows: 11.5 µs against 7.2 µs for the product alone).
    static let minimumRows = 1024

    /// The launch for `product` (one matrix, 16-bit, A not transposed, alpha 1, no C) with `activation`
    /// applied on the accumulators, or nil where this kernel does not apply: not Hopper (sm_90), an
    /// activation cuBLASLt finishes itself (none, ReLU), too few rows, or K or N not a multiple of 8.
    static func launch(
        _ product: CUDAMatMul, activation: EpilogueActivation?, architecture: Int, multiprocessors: Int,
        tile: TileShape = tileShapes[0]
    ) -> CUDALaunch? {
        let (tileColumns, stages) = (tile.columns, tile.stages)
        let (m, n, k) = (product.m, product.n, product.k)
        guard architecture == 90, product.dtype == .float16 || product.dtype == .bfloat16, product.batch == 1,
            !product.transposeA, product.alpha == 1, product.c == nil, let activation, activation != .relu,
            m >= minimumRows, n % 8 == 0, k % 8 == 0
        else { return nil }
        let tb = product.transposeB ? 0 : 1
        let mapA = CUDATensorMap(
            product.a, dtype: product.dtype, rows: m, columns: k, rowStride: k, boxRows: rowsPerBlock,
            boxColumns: depth)
        // B as [N, K] (transposed) in tile-high boxes, or [K, N] in boxes of 64 columns.
        let mapB =
            product.transposeB
            ? CUDATensorMap(
                product.b, dtype: product.dtype, rows: n, columns: k, rowStride: k, boxRows: tileColumns,
                boxColumns: depth)
            : CUDATensorMap(
                product.b, dtype: product.dtype, rows: k, columns: n, rowStride: n, boxRows: depth, boxColumns: 64)
        let tiles = (m + rowsPerBlock - 1) / rowsPerBlock * ((n + tileColumns - 1) / tileColumns)
        let (p0, p1) = CUDALinearAlgebraEpilogue.parameters(activation)
        return CUDALaunch(
            source: source(
                product.dtype, activation: CUDALinearAlgebraEpilogue.activationIndex(activation), transposedB: tb == 1,
                tile: tile),
            function: "kiln_wg_product",
            grid: CUDADim3(multiprocessors > 0 ? min(tiles, multiprocessors) : tiles), block: CUDADim3(threads),
            sharedBytes: sharedBytes(columns: tileColumns, stages: stages),
            arguments: [
                .tensorMap(mapA), .tensorMap(mapB), product.bias.map { .pointer($0) } ?? .int64(0),
                .pointer(product.d), .int32(Int32(m)), .int32(Int32(n)), .int32(Int32(k)), .int64(Int64(n)),
                .float32(p0), .float32(p1),
            ])
    }

    /// Output columns of a block's tile and shared-memory buffers in its ring.
    struct TileShape: Hashable, Sendable {
        var columns: Int
        var stages: Int
    }

    /// The tile shapes the builder times (`launches`), the default first: as many buffers as fit each width.
    static let tileShapes = [
        TileShape(columns: tileColumns, stages: stages), TileShape(columns: 192, stages: 5),
        TileShape(columns: 128, stages: 6),
    ]

    /// `launch` at each of `tileShapes`, the default first; nil-free and empty where the kernel does not apply.
    /// Every shape sums each output over K in the same order, so all write the same bytes.
    static func launches(
        _ product: CUDAMatMul, activation: EpilogueActivation?, architecture: Int, multiprocessors: Int
    ) -> [CUDALaunch] {
        tileShapes.compactMap {
            launch(
                product, activation: activation, architecture: architecture, multiprocessors: multiprocessors, tile: $0)
        }
    }

    /// Dynamic shared memory: the buffers (aligned to 1024 bytes), their barriers, the bias of a tile for each
    /// consumer warpgroup and each consumer warp's 16 x 64 store stage.
    static func sharedBytes(columns: Int, stages: Int) -> Int {
        (rowsPerBlock + columns) * depth * 2 * stages + 1024 + 16 * stages + 16 + 8 * columns + 8 * 16 * 144
    }

    /// The module of `kiln_wg_product` for `dtype` (float16 or bfloat16), one activation (`kiln_linalg_act`'s
    /// index) and one layout of B ([K, N] when `transposedB`, else [N, K]), compiled for sm_90a (NVRTC takes
    /// seconds over each).
    static func source(
        _ dtype: DType, activation: Int, transposedB: Bool, tile: TileShape = tileShapes[0]
    ) -> CUDASource {
        let ptx = dtype == .bfloat16 ? "bf16" : "f16"
        let tb = transposedB ? 1 : 0
        let entry = """
            extern "C" __global__ void __launch_bounds__(\(threads), 1) kiln_wg_product(
                const __grid_constant__ KilnTensorMap mapA, const __grid_constant__ KilnTensorMap mapB,
                const T* bias, T* C, int M, int N, int K, i64 ldc, float p0, float p1)
            {
                kiln_wg_product<\(tile.columns), \(tile.stages), \(tb), 1, \(activation)>(
                    &mapA, &mapB, bias, C, M, N, K, ldc, p0, p1);
            }

            """
        let instructions = [128, 192, 256].map { instruction(n: $0, ptx: ptx) }.joined()
        let text = CUDALinearAlgebraEpilogue.activationCode + tensorMemory + instructions + code + entry
        let shape = tile == tileShapes[0] ? "" : "_n\(tile.columns)s\(tile.stages)"
        var source = CUDAPrelude.specialized("wg_product_act\(activation)_tb\(tb)\(shape)", text, dtype: dtype)
        source.architectureSpecific = true
        return source
    }

    /// The instruction `m64nNk16` for operands of `ptx` (f16 or bf16) as a device function
    /// `kiln_wgmma_nN<TB>(float* d, u64 a, u64 b)`: d (N/2 accumulators per thread) += A·B from the two
    /// shared-memory descriptors.
    static func instruction(n: Int, ptx: String) -> String {
        let count = n / 2
        let registers = (0..<count).map { "%\($0)" }.joined(separator: ", ")
        let outputs = (0..<count).map { "\"+f\"(d[\($0)])" }.joined(separator: ", ")
        return """
            template <int TB> __device__ __forceinline__ void kiln_wgmma_n\(n)(float* d, u64 a, u64 b) {
                asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %\(count + 2), 0;\\n"
                    "wgmma.mma_async.sync.aligned.m64n\(n)k16.f32.\(ptx).\(ptx) {\(registers)}, "
                    "%\(count), %\(count + 1), p, 1, 1, 0, %\(count + 3);\\n}\\n"
                    : \(outputs)
                    : "l"(a), "l"(b), "r"(1), "n"(TB));
            }

            """
    }

    /// The tensor memory accelerator's pieces that Kiln's warpgroup kernels share: the tensor map passed by value,
    /// mbarrier waits and arrivals, the 2-D tiled load and the shared-memory matrix descriptor.
    static let tensorMemory = """
        /* A TMA tensor map (cuTensorMapEncodeTiled), passed by value as a __grid_constant__ parameter. */
        struct __align__(64) KilnTensorMap { u64 v[16]; };

        __device__ __forceinline__ void kiln_bar_init(unsigned bar, int count) {
            asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count));
        }
        __device__ __forceinline__ void kiln_bar_expect(unsigned bar, int bytes) {
            asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory");
        }
        __device__ __forceinline__ void kiln_bar_arrive(unsigned bar) {
            asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory");
        }
        /* Waits until the barrier's phase of this parity has completed. */
        __device__ __forceinline__ void kiln_bar_wait(unsigned bar, int parity) {
            asm volatile("{\\n.reg .pred p;\\nKILN_WAIT:\\n"
                "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\\n@!p bra KILN_WAIT;\\n}\\n"
                :: "r"(bar), "r"(parity) : "memory");
        }
        /* The box at (c0 innermost, c1) of a 2-D tensor map into shared memory; completes bytes on `bar`. */
        __device__ __forceinline__ void kiln_tma_2d(
            unsigned dst, const KilnTensorMap* map, int c0, int c1, unsigned bar)
        {
            asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
                "[%0], [%1, {%2, %3}], [%4];"
                :: "r"(dst), "l"((u64)map), "r"(c0), "r"(c1), "r"(bar) : "memory");
        }

        /* A shared-memory matrix descriptor: start address, leading and stride byte offsets (all in 16-byte
           units) and the swizzle (1: 128 bytes, 2: 64 bytes). */
        __device__ __forceinline__ u64 kiln_wg_desc(
            unsigned address, unsigned leading, unsigned stride, u64 swizzle = 1)
        {
            return (u64)((address & 0x3FFFF) >> 4) | ((u64)(leading >> 4) << 16) | ((u64)(stride >> 4) << 32)
                | (swizzle << 62);
        }

        """

    static let code = """
        typedef KILN_T T;

        template <int BN, int TB> __device__ __forceinline__ void kiln_wgmma(float* d, u64 a, u64 b) {
            if constexpr (BN == 256) kiln_wgmma_n256<TB>(d, a, b);
            else if constexpr (BN == 192) kiln_wgmma_n192<TB>(d, a, b);
            else kiln_wgmma_n128<TB>(d, a, b);
        }

        /* Persistent: block b takes tiles b, b + gridDim.x, ... (columns fastest). Warpgroup 0's first thread
           loads (TMA) every tile's K steps in order into the ring of STAGES buffers; buffer s is full when its
           TMA bytes have landed (full[s]) and empty when the warps that read it are done (empty[s]).
           WM 1 (cooperative): warpgroups 1 and 2 multiply 64 rows each of every tile. WM 2 (ping-pong): they take
           alternate tiles, 128 rows each, so one runs its epilogue while the other keeps the tensor cores busy;
           their K loops take turns (order[c] completes when the other warpgroup has passed its loop), so each
           waits on a buffer at most one phase ahead of its barrier.
           A's map: box 64 (K) x 128 rows. B's map: box 64 (K) x BN rows (TB 0), or 64 columns x 64 k-rows, BN/64
           boxes per tile, each a 8 KiB run of 8 atoms along K (TB 1). */
        template <int BN, int STAGES, int TB, int WM, int ACT>
        __device__ __forceinline__ void kiln_wg_product(
            const KilnTensorMap* mapA, const KilnTensorMap* mapB, const T* __restrict__ bias, T* __restrict__ C,
            int M, int N, int K, i64 ldc, float p0, float p1)
        {
            extern __shared__ __align__(1024) unsigned char kiln_wg_shared[];
            const int BM = 128, BK = 64;
            const unsigned A_BYTES = BM * BK * 2, STAGE = (BM + BN) * BK * 2;
            const unsigned base = ((unsigned)__cvta_generic_to_shared(kiln_wg_shared) + 1023u) & ~1023u;
            const unsigned full = base + STAGES * STAGE, empty = full + STAGES * 8, order = empty + STAGES * 8;
            const int tid = threadIdx.x, wg = tid >> 7;
            const int NT = (N + BN - 1) / BN, tiles = ((M + BM - 1) / BM) * NT, KT = (K + BK - 1) / BK;
            if (tid == 0) {
                for (int s = 0; s < STAGES; ++s) {
                    kiln_bar_init(full + 8 * s, 1);
                    kiln_bar_init(empty + 8 * s, 8 / WM);
                }
                kiln_bar_init(order, 4);
                kiln_bar_init(order + 8, 4);
                asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
            }
            __syncthreads();

            if (wg == 0) {
                if (tid != 0) return;
                int it = 0;
                for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
                    const int m0 = (tile / NT) * BM, n0 = (tile % NT) * BN;
                    for (int kt = 0; kt < KT; ++kt, ++it) {
                        const int s = it % STAGES, use = it / STAGES;
                        if (use > 0) kiln_bar_wait(empty + 8 * s, (use & 1) ^ 1);
                        const unsigned a = base + s * STAGE, bar = full + 8 * s;
                        kiln_bar_expect(bar, STAGE);
                        kiln_tma_2d(a, mapA, kt * BK, m0, bar);
                        if (TB == 0) {
                            kiln_tma_2d(a + A_BYTES, mapB, kt * BK, n0, bar);
                        } else {
                            #pragma unroll
                            for (int j = 0; j < BN / 64; ++j)
                                kiln_tma_2d(a + A_BYTES + j * 8192, mapB, n0 + 64 * j, kt * BK, bar);
                        }
                    }
                }
                return;
            }

            /* Consumer thread ct of the CT that share a tile; the bias of the tile (one column each, BN <= CT)
               and each warp's 16 x 64 store stage follow the barriers in shared memory. */
            const int CT = 256 / WM;
            const int cw = wg - 1, warp = (tid & 127) >> 5, lane = tid & 31, ct = WM == 1 ? tid - 128 : tid & 127;
            const unsigned origin = (unsigned)__cvta_generic_to_shared(kiln_wg_shared);
            float* biasTile = (float*)(kiln_wg_shared + (order + 16 - origin))
                + (WM == 1 ? 0 : cw * BN);
            unsigned* stage = (unsigned*)(biasTile + (WM == 1 ? BN : (2 - cw) * BN)) + (cw * 4 + warp) * 16 * 36;
            float d[WM * BN / 2];
            int ordinal = 0, mine = 0;
            for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x, ++ordinal) {
                if (WM == 2 && (ordinal & 1) != cw) continue;
                if (WM == 2 && (cw == 1 || mine > 0)) kiln_bar_wait(order + 8 * cw, (cw == 0 ? mine - 1 : mine) & 1);
                const int m0 = (tile / NT) * BM, n0 = (tile % NT) * BN;
                /* This tile's bias, loaded now and staged after the products. */
                const float biasValue = bias && ct < BN && n0 + ct < N ? (float)bias[n0 + ct] : 0.f;
                #pragma unroll
                for (int i = 0; i < WM * BN / 2; ++i) d[i] = 0.f;
                int it = ordinal * KT;
                for (int kt = 0; kt < KT; ++kt, ++it) {
                    const int s = it % STAGES;
                    kiln_bar_wait(full + 8 * s, (it / STAGES) & 1);
                    const unsigned a = base + s * STAGE + (WM == 1 ? cw * 64 * 128 : 0), b = base + s * STAGE + A_BYTES;
                    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
                    #pragma unroll
                    for (int kk = 0; kk < 4; ++kk) {
                        const u64 db = TB == 0 ? kiln_wg_desc(b + kk * 32, 16, 1024)
                                               : kiln_wg_desc(b + kk * 2048, 8192, 1024);
                        #pragma unroll
                        for (int half = 0; half < WM; ++half) {
                            const u64 da = kiln_wg_desc(a + half * 64 * 128 + kk * 32, 16, 1024);
                            kiln_wgmma<BN, TB>(d + half * BN / 2, da, db);
                        }
                    }
                    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
                    /* The previous buffer's products are done once at most this one is in flight. */
                    asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
                    if (kt > 0 && lane == 0) kiln_bar_arrive(empty + 8 * ((it - 1) % STAGES));
                }
                if (WM == 2 && lane == 0) kiln_bar_arrive(order + 8 * (1 - cw));
                ++mine;
                asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
                if (lane == 0) kiln_bar_arrive(empty + 8 * ((it - 1) % STAGES));

                /* Every thread sharing the bias is past the previous tile's epilogue before it is replaced. */
                asm volatile("bar.sync %0, %1;" :: "r"(WM == 1 ? 1 : 1 + cw), "r"(CT) : "memory");
                if (ct < BN) biasTile[ct] = biasValue;
                asm volatile("bar.sync %0, %1;" :: "r"(WM == 1 ? 1 : 1 + cw), "r"(CT) : "memory");

                /* Accumulator i of a thread in a 64-row half: row 16 * warp + lane / 4 (+ 8 for odd i / 2), column
                   8 * (i / 4) + 2 * (lane % 4) + i % 2. */
                #pragma unroll
                for (int half = 0; half < WM; ++half) {
                    const float* acc = d + half * BN / 2;
                    const int top = m0 + (WM == 1 ? cw : half) * 64 + warp * 16, r0 = top + (lane >> 2);
                    if (m0 + BM <= M && n0 + BN <= N) {
                        /* A whole tile: each warp passes its 16 rows through shared memory 64 columns at a time and
                           stores them as 16-byte runs, four full 128-byte rows per instruction. */
                        #pragma unroll
                        for (int part = 0; part < BN / 64; ++part) {
                            #pragma unroll
                            for (int jj = 0; jj < 8; ++jj) {
                                const int j = part * 8 + jj, c = j * 8 + 2 * (lane & 3);
                                const float b0 = biasTile[c], b1 = biasTile[c + 1];
                                #pragma unroll
                                for (int h = 0; h < 2; ++h) {
                                    const float x0 = acc[4 * j + 2 * h] + b0, x1 = acc[4 * j + 2 * h + 1] + b1;
                                    const T y0 = kiln_linalg_act<ACT>(x0, p0, p1);
                                    const T y1 = kiln_linalg_act<ACT>(x1, p0, p1);
                                    stage[((lane >> 2) + 8 * h) * 36 + jj * 4 + (lane & 3)] =
                                        (unsigned)y0.bits | ((unsigned)y1.bits << 16);
                                }
                            }
                            __syncwarp();
                            #pragma unroll
                            for (int i = 0; i < 4; ++i) {
                                const int r = (lane >> 3) + 4 * i, chunk = lane & 7;
                                const uint4 v = *(const uint4*)(stage + r * 36 + chunk * 4);
                                *(uint4*)(C + (i64)(top + r) * ldc + n0 + part * 64 + chunk * 8) = v;
                            }
                            __syncwarp();
                        }
                    } else {
                        #pragma unroll
                        for (int j = 0; j < BN / 8; ++j) {
                            const int c = j * 8 + 2 * (lane & 3), col = n0 + c;
                            const float b0 = biasTile[c], b1 = biasTile[c + 1];
                            #pragma unroll
                            for (int h = 0; h < 2; ++h) {
                                const int row = r0 + 8 * h;
                                const float x0 = acc[4 * j + 2 * h] + b0, x1 = acc[4 * j + 2 * h + 1] + b1;
                                const T y0 = kiln_linalg_act<ACT>(x0, p0, p1);
                                const T y1 = kiln_linalg_act<ACT>(x1, p0, p1);
                                if (row < M && col < N)
                                    *(unsigned*)(C + (i64)row * ldc + col) =
                                        (unsigned)y0.bits | ((unsigned)y1.bits << 16);
                            }
                        }
                    }
                }
            }
        }

        """
}
