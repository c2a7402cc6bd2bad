import KilnIR

/// CUDA C sources of the data-movement kernels. Every kernel moves opaque *units* of 1, 2, 4, 8 or 16 bytes,
/// never typed values, so one compiled module serves every dtype of that width (a float32 transpose and an
/// int32 transpose share code). Sources vary only with the unit, the rank (fully unrolled index loops), the
/// index type and the pad mode; sizes and strides are arguments. All kernels use grid-stride loops and 64-bit
/// addressing; `wide` picks 64-bit index decomposition where an element count reaches 2^31.
enum CUDAShapeKernels {
    /// Threads per block of the element-wise copy kernels.
    static let blockSize = 256
    /// Enough blocks for two full waves on a 132-SM H100 (8 resident blocks of 256 threads per SM); grid-stride
    /// loops cover the rest.
    static let maxBlocks = 132 * 16

    /// Unit widths the kernels move, widest first.
    static let units = [16, 8, 4, 2, 1]

    /// Grid for `count` work items of one thread each.
    static func grid(_ count: Int) -> CUDADim3 {
        CUDADim3(max(1, min((count + blockSize - 1) / blockSize, maxBlocks)))
    }

    /// The widest unit that divides every value (byte sizes, byte offsets, byte strides).
    static func unit(dividing values: [Int]) -> Int {
        units.first { u in values.allSatisfy { $0 % u == 0 } } ?? 1
    }

    /// Element sizes the kernels handle (strings and sub-byte packing are not device formats here).
    static func requireElementSize(_ dtype: DType) throws -> Int {
        let size = dtype.byteSize
        guard [1, 2, 4, 8].contains(size) else {
            throw KilnError.unsupported("the CUDA data-movement kernels do not move dtype \(dtype.onnxName)")
        }
        return size
    }

    static func unitDeclaration(_ unit: Int) -> String {
        switch unit {
        case 16: "struct alignas(16) kiln_u128 { unsigned long long lo, hi; };\ntypedef kiln_u128 T;\n"
        case 8: "typedef unsigned long long T;\n"
        case 4: "typedef unsigned int T;\n"
        case 2: "typedef unsigned short T;\n"
        default: "typedef unsigned char T;\n"
        }
    }

    static func indexDeclaration(wide: Bool) -> String {
        wide ? "typedef unsigned long long IDX;\n" : "typedef unsigned int IDX;\n"
    }

    /// The C type of gather indices.
    static func indexTypeName(_ dtype: DType) throws -> String {
        switch dtype {
        case .int64: return "long long"
        case .int32: return "int"
        default: throw KilnError.unsupported("CUDA gather reads int32 or int64 indices, not \(dtype.onnxName)")
        }
    }

    // MARK: - Strided copy

    static func stridedName(unit: Int, rank: Int, wide: Bool) -> String {
        "kiln_strided_u\(unit)_r\(rank)_\(wide ? "i64" : "i32")"
    }

    /// `out[i] = in[offset + Σ_d idx_d(i) · strides[d]]` over a contiguous output of `count` units whose shape is
    /// `sizes[0..<rank]`. Strides may be zero (broadcast) or negative (reversed slices). Reads coalesce when
    /// the last stride is 1 (then the unit is as wide as alignment allows, up to 16 bytes).
    static func strided(unit: Int, rank: Int, wide: Bool) -> CUDASource {
        let name = stridedName(unit: unit, rank: rank, wide: wide)
        let code =
            unitDeclaration(unit) + indexDeclaration(wide: wide) + """
                extern "C" __global__ void \(name)(
                    T* __restrict__ out, const T* __restrict__ in, i64 count, i64 offset, KilnDims sizes,
                    KilnDims strides)
                {
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += step) {
                        IDX rem = (IDX)i;
                        i64 src = offset;
                        #pragma unroll
                        for (int d = \(rank - 1); d > 0; --d) {
                            const IDX n = (IDX)sizes.v[d];
                            const IDX q = rem / n;
                            src += (i64)(rem - q * n) * strides.v[d];
                            rem = q;
                        }
                        src += (i64)rem * strides.v[0];
                        out[i] = in[src];
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }

    // MARK: - Tiled transpose

    static let tile = 32
    static let tileRows = 8

    static func transposeName(unit: Int, batchRank: Int) -> String { "kiln_transpose_u\(unit)_b\(batchRank)" }

    /// A transpose whose source-contiguous axis (output stride `dstRowStride`, `rows` long) is not the output's
    /// last axis (`cols` long, source stride `srcColStride`): 32×32 tiles staged through shared memory so both
    /// the read and the write of each warp touch consecutive addresses. The other axes form a batch of
    /// `batchRank` axes with their own source and output strides. Block 32×8, four elements a thread: all four
    /// loads of a tile are in flight before the first shared-memory store (a loop bounded by `blockDim.y` kept
    /// one at a time, and ResNet-50's layout transposes ran at about half the memory bandwidth).
    static func transpose(unit: Int, batchRank: Int) -> CUDASource {
        let name = transposeName(unit: unit, batchRank: batchRank)
        let code =
            unitDeclaration(unit) + """
                extern "C" __global__ void __launch_bounds__(256) \(name)(
                    T* __restrict__ out, const T* __restrict__ in, i64 rows, i64 cols, i64 srcColStride,
                    i64 dstRowStride, i64 offset, KilnDims batchSizes, KilnDims batchSrc, KilnDims batchDst, i64 tiles)
                {
                    __shared__ T tile[32][33];
                    const i64 rowTiles = (rows + 31) / 32;
                    const i64 colTiles = (cols + 31) / 32;
                    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
                        const i64 ct = t % colTiles;
                        i64 rest = t / colTiles;
                        const i64 rt = rest % rowTiles;
                        rest /= rowTiles;
                        i64 s = offset;
                        i64 o = 0;
                        #pragma unroll
                        for (int d = \(batchRank) - 1; d >= 0; --d) {
                            const i64 q = rest / batchSizes.v[d];
                            const i64 c = rest - q * batchSizes.v[d];
                            s += c * batchSrc.v[d];
                            o += c * batchDst.v[d];
                            rest = q;
                        }
                        const i64 r0 = rt * 32;
                        const i64 c0 = ct * 32;
                        T v[4];
                        #pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            const i64 r = r0 + threadIdx.x;
                            const i64 c = c0 + threadIdx.y + 8 * j;
                            if (r < rows && c < cols) v[j] = in[s + r + c * srcColStride];
                        }
                        #pragma unroll
                        for (int j = 0; j < 4; ++j) tile[threadIdx.y + 8 * j][threadIdx.x] = v[j];
                        __syncthreads();
                        #pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            const i64 r = r0 + threadIdx.y + 8 * j;
                            const i64 c = c0 + threadIdx.x;
                            if (r < rows && c < cols) out[o + r * dstRowStride + c] = tile[threadIdx.x][threadIdx.y + 8 * j];
                        }
                        __syncthreads();
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }

    static func narrowTransposeName(unit: Int, batchRank: Int, wide: Bool) -> String {
        "kiln_transpose_narrow_u\(unit)_b\(batchRank)_\(wide ? "i64" : "i32")"
    }

    /// The same move where the output's last axis is shorter than 8 (an image's 3 channels moved last): a tile
    /// would be mostly empty, so each thread copies one output row, its `cols` elements `srcColStride` apart in
    /// the source; consecutive threads read consecutive source elements, and the index arithmetic is per row,
    /// not per element.
    static func narrowTranspose(unit: Int, batchRank: Int, wide: Bool) -> CUDASource {
        let name = narrowTransposeName(unit: unit, batchRank: batchRank, wide: wide)
        let code =
            unitDeclaration(unit) + indexDeclaration(wide: wide) + """
                extern "C" __global__ void \(name)(
                    T* __restrict__ out, const T* __restrict__ in, i64 rows, i64 cols, i64 srcColStride,
                    i64 dstRowStride, i64 offset, KilnDims batchSizes, KilnDims batchSrc, KilnDims batchDst, i64 total)
                {
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                        IDX rest = (IDX)i / (IDX)rows;
                        const IDX r = (IDX)i - rest * (IDX)rows;
                        i64 s = offset + (i64)r;
                        i64 o = (i64)r * dstRowStride;
                        #pragma unroll
                        for (int d = \(batchRank) - 1; d >= 0; --d) {
                            const IDX q = rest / (IDX)batchSizes.v[d];
                            const IDX c = rest - q * (IDX)batchSizes.v[d];
                            s += (i64)c * batchSrc.v[d];
                            o += (i64)c * batchDst.v[d];
                            rest = q;
                        }
                        for (int c = 0; c < (int)cols; ++c) out[o + c] = in[s + c * srcColStride];
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }

    // MARK: - Concat

    /// Inputs one concat launch copies.
    static let concatInputs = 8

    static func concatName(unit: Int) -> String { "kiln_concat_u\(unit)" }

    /// Copies up to 8 inputs into one output viewed as `rows` rows of `rowUnits` units: input j, `ends[j] -
    /// ends[j-1]` units a row, fills that many columns of every row from column `starts[j]`. Unused pointers are
    /// never read (`parts` says how many are live).
    static func concat(unit: Int) -> CUDASource {
        let name = concatName(unit: unit)
        let params = (0..<concatInputs).map { "const T* __restrict__ p\($0)" }.joined(separator: ", ")
        let pick = (1..<concatInputs).map { "j == \($0) ? p\($0) : " }.joined() + "p0"
        let code =
            unitDeclaration(unit) + """
                extern "C" __global__ void \(name)(
                    T* __restrict__ out, \(params), KilnDims ends, KilnDims starts, int parts, i64 rows, i64 rowUnits,
                    i64 groupUnits)
                {
                    const i64 total = rows * groupUnits;
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
                        const i64 row = i / groupUnits;
                        const i64 c = i - row * groupUnits;
                        int j = 0;
                        i64 start = 0;
                        #pragma unroll
                        for (int k = 0; k < \(concatInputs - 1); ++k) {
                            if (k + 1 < parts && c >= ends.v[k]) { j = k + 1; start = ends.v[k]; }
                        }
                        const T* p = \(pick);
                        out[row * rowUnits + starts.v[j] + (c - start)] = p[row * (ends.v[j] - start) + (c - start)];
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }

    // MARK: - Fill and pad

    static func fillName(unit: Int) -> String { "kiln_fill_u\(unit)" }

    /// Writes the low `unit` bytes of `bits` to `count` units (unit <= 8).
    static func fill(unit: Int) -> CUDASource {
        let name = fillName(unit: unit)
        let code =
            unitDeclaration(unit) + """
                extern "C" __global__ void \(name)(T* __restrict__ out, i64 count, u64 bits) {
                    const T value = *reinterpret_cast<const T*>(&bits);
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += step) out[i] = value;
                }

                """
        return CUDASource(name: name, code: code)
    }

    static func padName(unit: Int, rank: Int, mode: PadLayer.Mode) -> String {
        "kiln_pad_\(mode.rawValue)_u\(unit)_r\(rank)"
    }

    /// Output coordinate o on axis d reads input coordinate `o - begins[d]`, mapped by the mode when it falls
    /// outside `[0, inSizes[d])` (constant: the element is `fillBits`). Negative begins crop.
    static func pad(unit: Int, rank: Int, mode: PadLayer.Mode) -> CUDASource {
        let name = padName(unit: unit, rank: rank, mode: mode)
        let map: String
        switch mode {
        case .constant: map = "if (x < 0 || x >= n) inside = false;"
        case .edge: map = "x = x < 0 ? 0 : (x >= n ? n - 1 : x);"
        case .wrap: map = "x = ((x % n) + n) % n;"
        case .reflect:
            map = """
                if (n == 1) { x = 0; } else {
                                const i64 period = 2 * (n - 1);
                                x = ((x % period) + period) % period;
                                if (x >= n) x = period - x;
                            }
                """
        }
        let code =
            unitDeclaration(unit) + """
                extern "C" __global__ void \(name)(
                    T* __restrict__ out, const T* __restrict__ in, i64 count, KilnDims outSizes, KilnDims inSizes,
                    KilnDims begins, KilnDims inStrides, u64 fillBits)
                {
                    const T fill = *reinterpret_cast<const T*>(&fillBits);
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += step) {
                        i64 rem = i;
                        i64 src = 0;
                        bool inside = true;
                        #pragma unroll
                        for (int d = \(rank - 1); d >= 0; --d) {
                            const i64 q = rem / outSizes.v[d];
                            i64 x = rem - q * outSizes.v[d] - begins.v[d];
                            rem = q;
                            const i64 n = inSizes.v[d];
                            \(map)
                            src += x * inStrides.v[d];
                        }
                        out[i] = inside ? in[src] : fill;
                    }
                }

                """
        return CUDASource(name: name, code: code)
    }
}
