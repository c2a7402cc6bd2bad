import KilnIR

/// Plans the copy behind transpose, slice, split, expand, tile and depth/space: a contiguous output of `shape`
/// whose element at multi-index i is `source[offset + Σ_d i_d · strides[d]]` (strides in elements; zero
/// broadcasts, negative reverses). The plan merges axes, then picks the cheapest form:
/// one `.copy` (a contiguous block), the strided kernel with the widest aligned unit (the source's last axis
/// is contiguous: a strided copy of rows, e.g. [B,S,H,D] -> [B,H,S,D]), the shared-memory tiled transpose
/// (the source's contiguous axis moved away from last; a thread per row when the rows are short), or the
/// strided kernel per element.
enum CUDAStridedCopy {
    struct Axis: Hashable {
        var size: Int
        var stride: Int
    }

    /// Drops size-1 axes and merges neighbours that are contiguous in the source, keeping row-major order.
    static func merge(shape: [Int], strides: [Int]) -> [Axis] {
        var axes: [Axis] = []
        for (size, stride) in zip(shape, strides) where size != 1 {
            if let last = axes.last, last.stride == stride * size {
                axes[axes.count - 1] = Axis(size: last.size * size, stride: stride)
            } else {
                axes.append(Axis(size: size, stride: stride))
            }
        }
        return axes
    }

    /// Row-major strides of a contiguous tensor of `sizes`.
    static func contiguousStrides(_ sizes: [Int]) -> [Int] {
        var strides = Array(repeating: 1, count: sizes.count)
        var s = 1
        for d in stride(from: sizes.count - 1, through: 0, by: -1) {
            strides[d] = s
            s *= sizes[d]
        }
        return strides
    }

    /// The steps that copy the view into `destination` (a whole output, contiguous).
    static func steps(
        source: CUDAOperand, destination: CUDAOperand, shape: [Int], strides: [Int], offset: Int, elementSize es: Int
    ) throws -> [CUDAStep] {
        let count = Tensor.elementCount(shape)
        guard count > 0 else { return [] }
        let axes = merge(shape: shape, strides: strides)
        guard let last = axes.last else {
            // One element.
            return [.copy(CUDACopy(destination: destination, source: source, sourceOffset: offset * es, bytes: es))]
        }
        if axes.count == 1 && last.stride == 1 {
            return [
                .copy(CUDACopy(destination: destination, source: source, sourceOffset: offset * es, bytes: count * es))
            ]
        }
        guard axes.count <= CUDAPrelude.maxRank else {
            throw KilnError.unsupported("CUDA strided copy of \(axes.count) non-mergeable axes (at most 8)")
        }
        if last.stride == 1 {
            // Rows contiguous in the source: move them in the widest unit every row start is aligned to.
            let unit = CUDAShapeKernels.unit(
                dividing: [last.size * es, offset * es] + axes.dropLast().map { $0.stride * es })
            var sizes = axes.map(\.size)
            sizes[sizes.count - 1] = last.size * es / unit
            let unitStrides = axes.dropLast().map { $0.stride * es / unit } + [1]
            return [launch(source, destination, sizes: sizes, strides: unitStrides, offset: offset * es / unit, unit)]
        }
        if let k = axes.lastIndex(where: { $0.stride == 1 }), axes[k].size >= 8 {
            return [transpose(source, destination, axes: axes, k: k, offset: offset, es)]
        }
        return [launch(source, destination, sizes: axes.map(\.size), strides: axes.map(\.stride), offset: offset, es)]
    }

    static func launch(
        _ source: CUDAOperand, _ destination: CUDAOperand, sizes: [Int], strides: [Int], offset: Int, _ unit: Int
    ) -> CUDAStep {
        let count = Tensor.elementCount(sizes)
        let wide = count >= 1 << 31
        let kernel = CUDAShapeKernels.strided(unit: unit, rank: sizes.count, wide: wide)
        return .launch(
            CUDALaunch(
                source: kernel, function: kernel.name, grid: CUDAShapeKernels.grid(count),
                block: CUDADim3(CUDAShapeKernels.blockSize),
                arguments: [
                    .pointer(destination), .pointer(source), .int(count), .int(offset), .dims(sizes), .dims(strides),
                ]))
    }

    /// Axis `k` (source stride 1) becomes the rows, the last axis the columns; the rest is the batch. Columns of
    /// 8 or more go through shared-memory tiles, fewer (an image's channels moved last) one thread a row.
    static func transpose(
        _ source: CUDAOperand, _ destination: CUDAOperand, axes: [Axis], k: Int, offset: Int, _ es: Int
    ) -> CUDAStep {
        let outStrides = contiguousStrides(axes.map(\.size))
        let lastIndex = axes.count - 1
        let batch = (0..<lastIndex).filter { $0 != k }
        let rows = axes[k].size
        let cols = axes[lastIndex].size
        let images = Tensor.elementCount(batch.map { axes[$0].size })
        let tile = CUDAShapeKernels.tile
        let narrow = cols < 8
        // Rows, or tiles.
        let work = narrow ? images * rows : images * ((rows + tile - 1) / tile) * ((cols + tile - 1) / tile)
        let kernel =
            narrow
            ? CUDAShapeKernels.narrowTranspose(unit: es, batchRank: batch.count, wide: work >= 1 << 31)
            : CUDAShapeKernels.transpose(unit: es, batchRank: batch.count)
        return .launch(
            CUDALaunch(
                source: kernel, function: kernel.name,
                grid: narrow ? CUDAShapeKernels.grid(work) : CUDADim3(min(work, CUDAShapeKernels.maxBlocks)),
                block: narrow ? CUDADim3(CUDAShapeKernels.blockSize) : CUDADim3(tile, CUDAShapeKernels.tileRows),
                arguments: [
                    .pointer(destination), .pointer(source), .int(rows), .int(cols), .int(axes[lastIndex].stride),
                    .int(outStrides[k]), .int(offset), .dims(batch.map { axes[$0].size }),
                    .dims(batch.map { axes[$0].stride }), .dims(batch.map { outStrides[$0] }), .int(work),
                ]))
    }
}
