extension CUDASplitProduct {
    /// The CUDA C of both forms (`bench/kernels/split_product.py` reads it from here): the loader of A's rows
    /// and the epilogue store they share, the `mma.sync` form, and under `__CUDA_ARCH_FEAT_SM90_ALL` (an sm_90a
    /// compile) the warpgroup form.
    static let code = """
        #ifndef KILN_SPLIT_BLOCKS
        #define KILN_SPLIT_BLOCKS 1
        #endif
        // KILN_SPLIT_BLOCKS: blocks per multiprocessor the compiler plans registers for. At 1, the 128-column
        // tile keeps its accumulators in registers (200); at 2 it spilled and ran slower.
        __device__ __forceinline__ unsigned kiln_tf32(float x) {
            unsigned r;
            asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
            return r;
        }

        __device__ __forceinline__ void kiln_mma_tf32(float* d, const unsigned* a, unsigned b0, unsigned b1) {
            asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                         "{%8,%9}, {%0,%1,%2,%3};\\n"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
        }

        __device__ __forceinline__ void kiln_cp_async16(void* shared, const void* global, bool valid) {
            unsigned address = (unsigned)__cvta_generic_to_shared(shared);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\\n"
                         :: "r"(address), "l"(global), "r"(valid ? 16 : 0));
        }

        __device__ __forceinline__ void kiln_cp_async4(void* shared, const void* global, bool valid) {
            unsigned address = (unsigned)__cvta_generic_to_shared(shared);
            asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\\n"
                         :: "r"(address), "l"(global), "r"(valid ? 4 : 0));
        }

        // A convolution's geometry, channels-last: X [N, H, W, C], output [N, OH, OW, ·], a KH x KW window
        // (KH = k / (KW * C)) at strides sh, sw after padding ph, pw.
        struct KilnSplitWindow { int h, w, c, oh, ow, kw, sh, sw, ph, pw; };

        // The rows of A one block loads, 128 of them, a slice of 32 columns at a time into shared memory rows
        // LD = 40 floats apart. With CONV, row p of A is output pixel p and its columns the window's pixels'
        // channels (C a multiple of 32, so a slice lies in one window position): an implicit-GEMM convolution, A
        // gathered from X as it loads, 16 bytes at a time. With GATHER (any C, any K; a stem's 3 channels) every
        // element is loaded on its own, K padded with zeros to whole slices, and each row's window origin comes
        // from a table in shared memory (3 x 128 ints) that the constructor fills; the caller syncs before loading.
        template <bool CONV, bool GATHER>
        struct KilnSplitRows {
            static constexpr int BM = 128, BK = 32, LD = BK + 8, ROWS = BM * BK / 4 / 256;
            // The output pixel of each A row this thread loads 16 bytes of: image, top and left of its window.
            int image[ROWS], top[ROWS], left[ROWS];
            const float* a;
            const int* origins;
            int m, k;
            KilnSplitWindow v;

            __device__ __forceinline__ KilnSplitRows(
                const float* a, int m, int k, int m0, KilnSplitWindow v, int* table)
                : a(a), origins(table), m(m), k(k), v(v) {
                const int tid = threadIdx.x;
                if (GATHER) {
                    for (int row = tid; row < BM; row += 256) {
                        int p = m0 + row, ow = p % v.ow, rest = p / v.ow;
                        table[row] = p < m ? rest / v.oh : -1;
                        table[BM + row] = (rest % v.oh) * v.sh - v.ph;
                        table[2 * BM + row] = ow * v.sw - v.pw;
                    }
                }
                #pragma unroll
                for (int i = 0; i < ROWS; ++i) {
                    int p = m0 + ((tid + i * 256) >> 3);
                    if (CONV) {
                        int ow = p % v.ow, rest = p / v.ow;
                        image[i] = p < m ? rest / v.oh : -1;
                        top[i] = (rest % v.oh) * v.sh - v.ph;
                        left[i] = ow * v.sw - v.pw;
                    } else {
                        image[i] = p < m ? p : -1;
                    }
                }
            }

            // Slice `slice` of the block's rows into `sa` (rows past M and pixels outside X read zeros).
            __device__ __forceinline__ void load(float* sa, int slice) const {
                const int tid = threadIdx.x, k0 = slice * BK;
                if (GATHER) {
                    // Thread column `tid % 32` of every eighth row: one window position and channel per slice.
                    const int col = tid & 31, kk = k0 + col, position = kk / v.c, channel = kk - position * v.c;
                    const int r = position / v.kw, q = position - r * v.kw;
                    #pragma unroll 4
                    for (int i = 0; i < BM * BK / 256; ++i) {
                        int row = (tid >> 5) + i * 8, n = origins[row];
                        int y = origins[BM + row] + r, x = origins[2 * BM + row] + q;
                        bool valid = kk < k && n >= 0 && y >= 0 && y < v.h && x >= 0 && x < v.w;
                        const float* source = valid ? a + (((size_t)n * v.h + y) * v.w + x) * v.c + channel : a;
                        kiln_cp_async4(sa + row * LD + col, source, valid);
                    }
                    return;
                }
                int r = 0, q = 0, c0 = k0;
                if (CONV) {
                    int position = k0 / v.c;
                    c0 = k0 - position * v.c;
                    r = position / v.kw;
                    q = position - r * v.kw;
                }
                #pragma unroll
                for (int i = 0; i < ROWS; ++i) {
                    int chunk = tid + i * 256, row = chunk >> 3, col = (chunk & 7) * 4;
                    bool valid = image[i] >= 0;
                    const float* source = a;
                    if (CONV) {
                        int y = top[i] + r, x = left[i] + q;
                        valid = valid && y >= 0 && y < v.h && x >= 0 && x < v.w;
                        if (valid) source = a + (((size_t)image[i] * v.h + y) * v.w + x) * v.c + c0 + col;
                    } else if (valid) {
                        source = a + (size_t)image[i] * k + k0 + col;
                    }
                    kiln_cp_async16(sa + row * LD + col, source, valid);
                }
            }
        };

        // The rows of A from channels-first images (the warpgroup form only): row p of A is pixel p % P of image
        // p / P (P = v.oh * v.ow pixels an image, a multiple of 4) and column j its channel j, A stored
        // [images, K, P]. A slice loads k-major, as 32 rows of the block's 128 pixels LDP floats apart, 16 bytes
        // (4 pixels of one image) at a time; a warp reads 512 consecutive bytes of one channel.
        struct KilnSplitColumns {
            static constexpr int BM = 128, BK = 32, LDP = BM + 4;
            const float* source;
            bool valid;
            int pixels;

            __device__ __forceinline__ KilnSplitColumns(
                const float* a, int m, int k, int m0, KilnSplitWindow v, int*) {
                pixels = v.oh * v.ow;
                const int p = m0 + (threadIdx.x & 31) * 4, image = p / pixels;
                valid = p < m;
                source = valid ? a + (size_t)image * k * pixels + (p - image * pixels) : a;
            }

            __device__ __forceinline__ void load(float* sa, int slice) const {
                const int quad = threadIdx.x & 31, row = threadIdx.x >> 5;
                #pragma unroll
                for (int i = 0; i < BK / 8; ++i) {
                    const int kk = row + 8 * i;
                    const float* from = valid ? source + (size_t)(slice * BK + kk) * pixels : source;
                    kiln_cp_async16(sa + kk * LDP + quad * 4, from, valid);
                }
            }
        };

        // The loader of A's rows: channels-first images' pixels (COLUMNS), else rows, windows or gathered windows.
        template <bool COLUMNS, bool CONV, bool GATHER> struct KilnSplitLoader { typedef KilnSplitRows<CONV, GATHER> type; };
        template <bool CONV, bool GATHER> struct KilnSplitLoader<true, CONV, GATHER> { typedef KilnSplitColumns type; };

        // Slice k0 of B's rows n0 ... n0 + BN - 1 into shared memory, element (row, col) at `at(row, col)`: 16 bytes
        // at a time (K a multiple of 32), or with GATHER one element at a time, columns past K read as zeros.
        template <int BN, bool GATHER, typename At>
        __device__ __forceinline__ void kiln_split_load_b(
            float* sb, const float* __restrict__ b, int n0, int k, int k0, At at) {
            const int tid = threadIdx.x;
            if (GATHER) {
                const int col = tid & 31, kk = k0 + col;
                #pragma unroll
                for (int i = 0; i < BN * 32 / 256; ++i) {
                    int row = (tid >> 5) + i * 8;
                    const float* source = kk < k ? b + (size_t)(n0 + row) * k + kk : b;
                    kiln_cp_async4(sb + at(row, col), source, kk < k);
                }
                return;
            }
            #pragma unroll
            for (int i = 0; i < BN * 8 / 256; ++i) {
                int chunk = tid + i * 256, row = chunk >> 3, col = (chunk & 7) * 4;
                kiln_cp_async16(sb + at(row, col), b + (size_t)(n0 + row) * k + k0 + col, true);
            }
        }

        // Stores a 128 x BN tile from shared memory (rows BN + 4 floats apart) to C at (m0, n0) with the bias,
        // residual and ReLU, in 16-byte runs of a row; rows past M are not stored.
        template <int BN>
        __device__ __forceinline__ void kiln_split_store(
            const float* tile, const float* __restrict__ bias, const float* residual, float* c, int m, int n, int m0,
            int n0, int relu) {
            constexpr int LDT = BN + 4;
            #pragma unroll 4
            for (int index = threadIdx.x; index < 128 * BN / 4; index += 256) {
                int row = index / (BN / 4), col = (index % (BN / 4)) * 4;
                if (m0 + row >= m) continue;
                float4 v = *reinterpret_cast<const float4*>(tile + row * LDT + col);
                size_t at = (size_t)(m0 + row) * n + n0 + col;
                if (bias) {
                    float4 add = *reinterpret_cast<const float4*>(bias + n0 + col);
                    v.x += add.x; v.y += add.y; v.z += add.z; v.w += add.w;
                }
                if (residual) {
                    float4 r = *reinterpret_cast<const float4*>(residual + at);
                    v.x += r.x; v.y += r.y; v.z += r.z; v.w += r.w;
                }
                if (relu) {
                    // NaN stays NaN, as the reference ReLU keeps it.
                    v.x = v.x < 0.0f ? 0.0f : v.x;
                    v.y = v.y < 0.0f ? 0.0f : v.y;
                    v.z = v.z < 0.0f ? 0.0f : v.z;
                    v.w = v.w < 0.0f ? 0.0f : v.w;
                }
                *reinterpret_cast<float4*>(c + at) = v;
            }
        }

        // WARPS_M x WARPS_N warps over a 128 x BN tile, each warp 16*MF rows by 8*NF columns, with mma.sync.
        template <int BN, int WARPS_M, int WARPS_N, bool CONV, bool GATHER = false>
        __device__ __forceinline__ void kiln_split_product(
            const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
            const float* residual, float* c, int m, int n, int k, int relu, KilnSplitWindow v) {
            constexpr int BM = 128, BK = 32, LD = BK + 8, STAGES = 3;
            constexpr int MF = BM / WARPS_M / 16, NF = BN / WARPS_N / 8;
            extern __shared__ __align__(16) float kiln_split_shared[];
            float* sa = kiln_split_shared;
            float* sb = kiln_split_shared + STAGES * BM * LD;
            const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
            const int g = lane >> 2, t = lane & 3;
            const int wm = (warp / WARPS_N) * (MF * 16), wn = (warp % WARPS_N) * (NF * 8);
            const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
            const int slices = (k + BK - 1) / BK;
            const KilnSplitRows<CONV, GATHER> rows(a, m, k, m0, v, reinterpret_cast<int*>(sb + STAGES * BN * LD));
            if (GATHER) __syncthreads();

            auto load = [&](int slice, int stage) {
                rows.load(sa + stage * BM * LD, slice);
                kiln_split_load_b<BN, GATHER>(sb + stage * BN * LD, b, n0, k, slice * BK,
                                              [](int row, int col) { return row * LD + col; });
            };

            float acc[MF][NF][4] = {};

            #pragma unroll
            for (int s = 0; s < STAGES - 1; ++s) {
                if (s < slices) load(s, s);
                asm volatile("cp.async.commit_group;\\n");
            }
            for (int slice = 0; slice < slices; ++slice) {
                asm volatile("cp.async.wait_group %0;\\n" :: "n"(STAGES - 2));
                __syncthreads();
                int next = slice + STAGES - 1;
                if (next < slices) load(next, next % STAGES);
                asm volatile("cp.async.commit_group;\\n");
                const float* tileA = sa + (slice % STAGES) * BM * LD + wm * LD;
                const float* tileB = sb + (slice % STAGES) * BN * LD + wn * LD;
                // The tensor cores truncate as they add into the accumulator, which biases a long sum: each slice
                // sums into zeros, then adds to the running total with a rounded float32 addition.
                float part[MF][NF][4] = {};
                #pragma unroll
                for (int kk = 0; kk < BK; kk += 8) {
                    // Slot t of a fragment holds k = kk + 2t and slot t + 4 holds kk + 2t + 1 (A and B alike, so
                    // the sum is the same): each thread reads its two as one 8-byte load.
                    unsigned bh[NF][2], bl[NF][2];
                    #pragma unroll
                    for (int j = 0; j < NF; ++j) {
                        float2 x = *reinterpret_cast<const float2*>(tileB + (j * 8 + g) * LD + kk + 2 * t);
                        bh[j][0] = kiln_tf32(x.x);
                        bl[j][0] = kiln_tf32(x.x - __uint_as_float(bh[j][0]));
                        bh[j][1] = kiln_tf32(x.y);
                        bl[j][1] = kiln_tf32(x.y - __uint_as_float(bh[j][1]));
                    }
                    #pragma unroll
                    for (int i = 0; i < MF; ++i) {
                        unsigned ah[4], al[4];
                        #pragma unroll
                        for (int half = 0; half < 2; ++half) {
                            float2 x = *reinterpret_cast<const float2*>(tileA + (i * 16 + g + 8 * half) * LD + kk + 2 * t);
                            ah[half] = kiln_tf32(x.x);
                            al[half] = kiln_tf32(x.x - __uint_as_float(ah[half]));
                            ah[half + 2] = kiln_tf32(x.y);
                            al[half + 2] = kiln_tf32(x.y - __uint_as_float(ah[half + 2]));
                        }
                        #pragma unroll
                        for (int j = 0; j < NF; ++j) {
                            kiln_mma_tf32(part[i][j], al, bh[j][0], bh[j][1]);
                            kiln_mma_tf32(part[i][j], ah, bl[j][0], bl[j][1]);
                            kiln_mma_tf32(part[i][j], ah, bh[j][0], bh[j][1]);
                        }
                    }
                }
                #pragma unroll
                for (int i = 0; i < MF; ++i)
                    #pragma unroll
                    for (int j = 0; j < NF; ++j)
                        #pragma unroll
                        for (int e = 0; e < 4; ++e) acc[i][j][e] += part[i][j][e];
            }
            asm volatile("cp.async.wait_group 0;\\n");
            __syncthreads();

            // The tile goes through shared memory, so the epilogue reads and writes whole 16-byte runs.
            constexpr int LDT = BN + 4;
            float* tile = kiln_split_shared;
            #pragma unroll
            for (int i = 0; i < MF; ++i)
                #pragma unroll
                for (int j = 0; j < NF; ++j)
                    #pragma unroll
                    for (int half = 0; half < 2; ++half)
                        *reinterpret_cast<float2*>(tile + (wm + i * 16 + g + 8 * half) * LDT + wn + j * 8 + 2 * t) =
                            make_float2(acc[i][j][2 * half], acc[i][j][2 * half + 1]);
            __syncthreads();
            kiln_split_store<BN>(tile, bias, residual, c, m, n, m0, n0, relu);
        }

        // The entry points: products, and windows loaded 16 bytes (conv) or one element (gather) at a time.
        #define KILN_SPLIT_PRODUCT(BN, WARPS_M, WARPS_N) \\
            extern "C" __global__ void __launch_bounds__(256, KILN_SPLIT_BLOCKS) kiln_split_tf32_product_##BN( \\
                const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias, \\
                const float* residual, float* c, int m, int n, int k, int relu) { \\
                kiln_split_product<BN, WARPS_M, WARPS_N, false>(a, b, bias, residual, c, m, n, k, relu, KilnSplitWindow{}); \\
            }
        #define KILN_SPLIT_WINDOW(KIND, GATHER, BN, WARPS_M, WARPS_N) \\
            extern "C" __global__ void __launch_bounds__(256, KILN_SPLIT_BLOCKS) kiln_split_tf32_##KIND##_##BN( \\
                const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, \\
                const float* residual, float* y, int m, int n, int k, int relu, int h, int width, int channels, \\
                int oh, int ow, int kw, int sh, int sw, int ph, int pw) { \\
                KilnSplitWindow v{h, width, channels, oh, ow, kw, sh, sw, ph, pw}; \\
                kiln_split_product<BN, WARPS_M, WARPS_N, true, GATHER>(x, w, bias, residual, y, m, n, k, relu, v); \\
            }
        KILN_SPLIT_PRODUCT(128, 2, 4)
        KILN_SPLIT_PRODUCT(64, 4, 2)
        KILN_SPLIT_WINDOW(conv, false, 128, 2, 4)
        KILN_SPLIT_WINDOW(conv, false, 64, 4, 2)
        KILN_SPLIT_WINDOW(gather, true, 128, 2, 4)
        KILN_SPLIT_WINDOW(gather, true, 64, 4, 2)

        #if defined(__CUDA_ARCH_FEAT_SM90_ALL)
        // Hopper (sm_90a): the same products on the warpgroup instructions. B goes to shared memory as raw
        // float32 and is split there once per block, in place, into its hi part and a lo part beside it, both in
        // the layout wgmma reads (rows of 128 bytes, 128-byte swizzle); A is split in registers as above.

        // A shared-memory descriptor for rows of 128 bytes with the 128-byte swizzle, 8-row groups 1024 bytes apart.
        __device__ __forceinline__ u64 kiln_split_desc(unsigned address) {
            return (u64)((address & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
        }

        #define KILN_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), \\
            "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
        // d (N/2 accumulators a thread) = A·B (+ d where `accumulate`), A from four registers, B from shared memory.
        template <int N>
        __device__ __forceinline__ void kiln_wgmma_tf32(float* d, const unsigned* a, u64 b, int accumulate) {
            if constexpr (N == 128) {
                asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %69, 0;\\n"
                    "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                    "{%64, %65, %66, %67}, %68, p, 1, 1;\\n}\\n"
                    : KILN_D8(0), KILN_D8(8), KILN_D8(16), KILN_D8(24), KILN_D8(32), KILN_D8(40), KILN_D8(48),
                      KILN_D8(56)
                    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
            } else {
                asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %37, 0;\\n"
                    "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                    "{%32, %33, %34, %35}, %36, p, 1, 1;\\n}\\n"
                    : KILN_D8(0), KILN_D8(8), KILN_D8(16), KILN_D8(24)
                    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
            }
        }

        // Two warpgroups over a 128 x BN tile, 64 rows each, through STAGES buffers of 32-wide slices: while one
        // slice's 12 products run, the block loads a later slice, splits the next one's B and reads the next
        // one's A fragments. Each slice sums into zeros (the first product does not accumulate) and is then added
        // to the total in rounded float32, as above.
        template <int BN, bool CONV, bool GATHER, bool COLUMNS = false>
        __device__ __forceinline__ void kiln_split_wg_product(
            const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
            const float* residual, float* c, int m, int n, int k, int relu, KilnSplitWindow v) {
            constexpr int BM = 128, BK = 32, LD = BK + 8, STAGES = 4;
            constexpr int B_BYTES = BN * BK * 4, STAGE = 2 * B_BYTES + BM * LD * 4;
            extern __shared__ __align__(1024) unsigned char kiln_split_wg_shared[];
            const unsigned origin = (unsigned)__cvta_generic_to_shared(kiln_split_wg_shared);
            const unsigned sbase = (origin + 1023u) & ~1023u;
            unsigned char* base = kiln_split_wg_shared + (sbase - origin);
            const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
            const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, slices = (k + BK - 1) / BK;
            // Stage s: B's hi part, its lo part (BN rows of 128 bytes each), then A (BM rows of LD floats).
            auto hiOf = [&](int s) { return reinterpret_cast<float*>(base + s * STAGE); };
            auto aOf = [&](int s) { return reinterpret_cast<float*>(base + s * STAGE + 2 * B_BYTES); };
            const typename KilnSplitLoader<COLUMNS, CONV, GATHER>::type rows(
                a, m, k, m0, v, reinterpret_cast<int*>(base + STAGES * STAGE));
            if (GATHER) __syncthreads();

            // Element (row, col) of a B slice lies at row * 32 + ((col / 4) ^ (row % 8)) * 4 + col % 4.
            auto load = [&](int slice) {
                const int s = slice % STAGES;
                rows.load(aOf(s), slice);
                kiln_split_load_b<BN, GATHER>(hiOf(s), b, n0, k, slice * BK, [](int row, int col) {
                    return row * BK + (((col >> 2) ^ (row & 7)) << 2) + (col & 3);
                });
            };

            // Splits stage s's B in place into hi and lo, each group of 8 k reordered so that position p holds k 2p
            // and position 4 + p holds k 2p + 1: the order of a thread's A fragment slots (one 8-byte load each).
            auto split = [&](int s) {
                float* hi = hiOf(s);
                float* lo = hi + BN * BK;
                #pragma unroll
                for (int i = 0; i < BN * 4 / 256; ++i) {
                    const int task = tid + i * 256, row = task >> 2, q = task & 3;
                    const int c0 = row * BK + (((2 * q) ^ (row & 7)) << 2);
                    const int c1 = row * BK + (((2 * q + 1) ^ (row & 7)) << 2);
                    const float4 x0 = *reinterpret_cast<const float4*>(hi + c0);
                    const float4 x1 = *reinterpret_cast<const float4*>(hi + c1);
                    const float e[8] = {x0.x, x0.z, x1.x, x1.z, x0.y, x0.w, x1.y, x1.w};
                    unsigned h[8], l[8];
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        h[j] = kiln_tf32(e[j]);
                        l[j] = kiln_tf32(e[j] - __uint_as_float(h[j]));
                    }
                    *reinterpret_cast<uint4*>(hi + c0) = make_uint4(h[0], h[1], h[2], h[3]);
                    *reinterpret_cast<uint4*>(hi + c1) = make_uint4(h[4], h[5], h[6], h[7]);
                    *reinterpret_cast<uint4*>(lo + c0) = make_uint4(l[0], l[1], l[2], l[3]);
                    *reinterpret_cast<uint4*>(lo + c1) = make_uint4(l[4], l[5], l[6], l[7]);
                }
                // wgmma reads shared memory through the async proxy.
                asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
            };

            // Warp w of warpgroup wg multiplies rows 64 wg + 16 w + g and + 8 (the mma.sync fragment layout).
            const int rowA = (warp >> 2) * 64 + (warp & 3) * 16 + g;
            // With COLUMNS, A's slice is k-major (LDP floats a k): the two k of a slot pair are two loads.
            auto fragments = [&](int s, unsigned (&ah)[4][4], unsigned (&al)[4][4]) {
                constexpr int LDP = KilnSplitColumns::LDP;
                const float* tileA = COLUMNS ? aOf(s) + 2 * t * LDP + rowA : aOf(s) + rowA * LD + 2 * t;
                #pragma unroll
                for (int kk = 0; kk < 4; ++kk)
                    #pragma unroll
                    for (int half = 0; half < 2; ++half) {
                        float2 x;
                        if constexpr (COLUMNS) {
                            const float* at = tileA + kk * 8 * LDP + half * 8;
                            x = make_float2(at[0], at[LDP]);
                        } else {
                            x = *reinterpret_cast<const float2*>(tileA + half * 8 * LD + kk * 8);
                        }
                        ah[kk][half] = kiln_tf32(x.x);
                        al[kk][half] = kiln_tf32(x.x - __uint_as_float(ah[kk][half]));
                        ah[kk][half + 2] = kiln_tf32(x.y);
                        al[kk][half + 2] = kiln_tf32(x.y - __uint_as_float(ah[kk][half + 2]));
                    }
            };

            float acc[BN / 2], part[BN / 2];
            #pragma unroll
            for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
            auto step = [&](int slice, const unsigned (&ah)[4][4], const unsigned (&al)[4][4], unsigned (&nh)[4][4],
                            unsigned (&nl)[4][4]) {
                const unsigned hi = sbase + (slice % STAGES) * STAGE, lo = hi + B_BYTES;
                asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory");
                #pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    kiln_wgmma_tf32<BN>(part, al[kk], kiln_split_desc(hi + kk * 32), kk > 0);
                    kiln_wgmma_tf32<BN>(part, ah[kk], kiln_split_desc(lo + kk * 32), 1);
                    kiln_wgmma_tf32<BN>(part, ah[kk], kiln_split_desc(hi + kk * 32), 1);
                }
                asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory");
                // The next slice has landed, and every thread is past the previous slice, whose stage now loads.
                asm volatile("cp.async.wait_group %0;\\n" :: "n"(STAGES - 3));
                __syncthreads();
                if (slice + STAGES - 1 < slices) load(slice + STAGES - 1);
                asm volatile("cp.async.commit_group;\\n");
                if (slice + 1 < slices) {
                    split((slice + 1) % STAGES);
                    fragments((slice + 1) % STAGES, nh, nl);
                }
                asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
                #pragma unroll
                for (int i = 0; i < BN / 2; ++i) acc[i] += part[i];
                // Every thread's split of the next slice is done before its products start.
                __syncthreads();
            };

            unsigned h0[4][4], l0[4][4], h1[4][4], l1[4][4];
            #pragma unroll
            for (int s = 0; s < STAGES - 1; ++s) {
                if (s < slices) load(s);
                asm volatile("cp.async.commit_group;\\n");
            }
            asm volatile("cp.async.wait_group %0;\\n" :: "n"(STAGES - 2));
            __syncthreads();
            split(0);
            fragments(0, h0, l0);
            __syncthreads();
            for (int slice = 0; slice < slices; slice += 2) {
                step(slice, h0, l0, h1, l1);
                if (slice + 1 < slices) step(slice + 1, h1, l1, h0, l0);
            }
            asm volatile("cp.async.wait_group 0;\\n");
            __syncthreads();

            // Accumulator i of a thread: row rowA (+ 8 for odd i / 2), column 8 (i / 4) + 2 t + i % 2.
            constexpr int LDT = BN + 4;
            float* tile = reinterpret_cast<float*>(base);
            #pragma unroll
            for (int j = 0; j < BN / 8; ++j)
                #pragma unroll
                for (int half = 0; half < 2; ++half)
                    *reinterpret_cast<float2*>(tile + (rowA + 8 * half) * LDT + j * 8 + 2 * t) =
                        make_float2(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
            __syncthreads();
            kiln_split_store<BN>(tile, bias, residual, c, m, n, m0, n0, relu);
        }

        #define KILN_SPLIT_WG_PRODUCT(BN) \\
            extern "C" __global__ void __launch_bounds__(256, 1) kiln_split_tf32_wg_product_##BN( \\
                const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias, \\
                const float* residual, float* c, int m, int n, int k, int relu) { \\
                kiln_split_wg_product<BN, false, false>(a, b, bias, residual, c, m, n, k, relu, KilnSplitWindow{}); \\
            }
        #define KILN_SPLIT_WG_WINDOW(KIND, GATHER, BN) \\
            extern "C" __global__ void __launch_bounds__(256, 1) kiln_split_tf32_wg_##KIND##_##BN( \\
                const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, \\
                const float* residual, float* y, int m, int n, int k, int relu, int h, int width, int channels, \\
                int oh, int ow, int kw, int sh, int sw, int ph, int pw) { \\
                KilnSplitWindow v{h, width, channels, oh, ow, kw, sh, sw, ph, pw}; \\
                kiln_split_wg_product<BN, true, GATHER>(x, w, bias, residual, y, m, n, k, relu, v); \\
            }
        // A from channels-first images of `pixels` pixels each (KilnSplitColumns).
        #define KILN_SPLIT_WG_COLUMNS(BN) \\
            extern "C" __global__ void __launch_bounds__(256, 1) kiln_split_tf32_wg_columns_##BN( \\
                const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias, \\
                const float* residual, float* c, int m, int n, int k, int relu, int pixels) { \\
                KilnSplitWindow v{}; \\
                v.oh = 1; \\
                v.ow = pixels; \\
                kiln_split_wg_product<BN, false, false, true>(a, b, bias, residual, c, m, n, k, relu, v); \\
            }
        KILN_SPLIT_WG_PRODUCT(128)
        KILN_SPLIT_WG_PRODUCT(64)
        KILN_SPLIT_WG_COLUMNS(128)
        KILN_SPLIT_WG_COLUMNS(64)
        KILN_SPLIT_WG_WINDOW(conv, false, 128)
        KILN_SPLIT_WG_WINDOW(conv, false, 64)
        KILN_SPLIT_WG_WINDOW(gather, true, 128)
        KILN_SPLIT_WG_WINDOW(gather, true, 64)
        #endif
        """
}
