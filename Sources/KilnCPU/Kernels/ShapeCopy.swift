import KilnIR

/// Dtype-agnostic element movement: every data-movement kernel reduces to reading the source through strides
/// or through per-axis index maps. Elements are moved as `dtype.byteSize` bytes (strings as values), so one
/// code path serves every dtype.
enum ShapeCopy {
    /// `x` with its axes reordered by `perm` (`result.shape[i] = x.shape[perm[i]]`): Transpose.
    static func permuted(_ x: Tensor, _ perm: [Int], threads: Int) -> Tensor {
        let strides = Broadcast.strides(x.shape)
        return strided(
            x, offset: 0, strides: perm.map { strides[$0] }, shape: perm.map { x.shape[$0] }, threads: threads)
    }

    /// A new contiguous tensor of `shape` whose element at multi-index i is `source[offset + Σ i[d]·strides[d]]`.
    /// Strides are in elements and may be zero (broadcast) or negative (reversed slices).
    static func strided(_ source: Tensor, offset: Int, strides: [Int], shape: [Int], threads: Int) -> Tensor {
        let n = Tensor.elementCount(shape)
        // Merge axes that are contiguous in the source so the inner loop runs as long as possible.
        var dims: [(size: Int, stride: Int)] = []
        for (size, stride) in zip(shape, strides) where size != 1 {
            if let last = dims.last, last.stride == stride * size {
                dims[dims.count - 1] = (last.size * size, stride)
            } else {
                dims.append((size, stride))
            }
        }
        let inner = dims.last ?? (size: 1, stride: 1)
        let outer = Array(dims.dropLast())
        if source.dtype == .string {
            let src = source.storage.strings
            var out: [String] = []
            out.reserveCapacity(n)
            if n > 0 {
                walk(outer, from: 0, count: n / inner.size, offset: offset) { base in
                    for i in 0..<inner.size { out.append(src[base + i * inner.stride]) }
                }
            }
            return Tensor(shape: shape, strings: out)
        }
        let result = Tensor(zeros: source.dtype, shape: shape)
        guard n > 0 else { return result }
        let es = source.dtype.byteSize
        let src = UnsafeRawPointer(source.storage.bytes)
        let dst = result.storage.bytes
        if inner.stride != 1, es == 4 || es == 2 || es == 8,
            let k = outer.lastIndex(where: { $0.stride == 1 }), outer[k].size >= 8, inner.size >= 8
        {
            // A real transpose: the source's contiguous axis is not the output's. Copy in square tiles so
            // reads and writes both stay within a few cache lines.
            tiled(dims: dims, k: k, src: src + offset * es, dst: dst, es: es, threads: threads)
            return result
        }
        let outerCount = n / inner.size
        Parallel.forEach(outerCount, threads: threads, minimumChunk: max(1, 32768 / max(inner.size, 1))) { range in
            var o = range.lowerBound
            walk(outer, from: range.lowerBound, count: range.count, offset: offset) { base in
                copyRun(dst + o * inner.size * es, src + base * es, count: inner.size, stride: inner.stride, es)
                o += 1
            }
        }
        return result
    }

    /// Tiled copy for transposes: axis `k` of `dims` has source stride 1, the last axis has a larger one.
    static func tiled(
        dims: [(size: Int, stride: Int)], k: Int, src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, es: Int,
        threads: Int
    ) {
        let last = dims.count - 1
        var dstStrides = [Int](repeating: 1, count: dims.count)
        for d in stride(from: last - 1, through: 0, by: -1) { dstStrides[d] = dstStrides[d + 1] * dims[d + 1].size }
        let rows = dims[k].size
        let cols = dims[last].size
        let srcColStride = dims[last].stride
        let dstRowStride = dstStrides[k]
        // The remaining axes are walked with both offsets.
        let rest = (0..<last).filter { $0 != k }
        let restSizes = rest.map { dims[$0].size }
        let restCount = restSizes.reduce(1, *)
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        Parallel.forEach(restCount * rowTiles, threads: threads, minimumChunk: max(1, 64 / max(cols / tile, 1))) {
            range in
            for job in range {
                var r = job / rowTiles
                let rt = job % rowTiles
                var s = 0
                var t = 0
                for j in stride(from: rest.count - 1, through: 0, by: -1) {
                    let i = r % restSizes[j]
                    r /= restSizes[j]
                    s += i * dims[rest[j]].stride
                    t += i * dstStrides[rest[j]]
                }
                let r0 = rt * tile
                let r1 = min(r0 + tile, rows)
                var c0 = 0
                while c0 < cols {
                    let c1 = min(c0 + tile, cols)
                    for row in r0..<r1 {
                        let d = t + row * dstRowStride
                        let sr = s + row
                        switch es {
                        case 4:
                            for c in c0..<c1 {
                                dst.storeBytes(
                                    of: src.load(fromByteOffset: (sr + c * srcColStride) * 4, as: UInt32.self),
                                    toByteOffset: (d + c) * 4, as: UInt32.self)
                            }
                        case 8:
                            for c in c0..<c1 {
                                dst.storeBytes(
                                    of: src.load(fromByteOffset: (sr + c * srcColStride) * 8, as: UInt64.self),
                                    toByteOffset: (d + c) * 8, as: UInt64.self)
                            }
                        default:
                            for c in c0..<c1 {
                                dst.storeBytes(
                                    of: src.load(fromByteOffset: (sr + c * srcColStride) * 2, as: UInt16.self),
                                    toByteOffset: (d + c) * 2, as: UInt16.self)
                            }
                        }
                    }
                    c0 = c1
                }
            }
        }
    }

    /// Calls `body` with the source offset of each outer index in `start..<start+count` (row-major order).
    @inline(__always)
    static func walk(
        _ outer: [(size: Int, stride: Int)], from start: Int, count: Int, offset: Int, _ body: (Int) -> Void
    ) {
        guard count > 0 else { return }
        var index = [Int](repeating: 0, count: outer.count)
        var rem = start
        var base = offset
        for d in stride(from: outer.count - 1, through: 0, by: -1) {
            index[d] = rem % outer[d].size
            rem /= outer[d].size
            base += index[d] * outer[d].stride
        }
        for _ in 0..<count {
            body(base)
            var d = outer.count - 1
            while d >= 0 {
                index[d] += 1
                base += outer[d].stride
                if index[d] < outer[d].size { break }
                base -= outer[d].stride * outer[d].size
                index[d] = 0
                d -= 1
            }
        }
    }

    @inline(__always)
    static func copyRun(_ dst: UnsafeMutableRawPointer, _ src: UnsafeRawPointer, count: Int, stride: Int, _ es: Int) {
        if stride == 1 {
            dst.copyMemory(from: src, byteCount: count * es)
            return
        }
        switch es {
        case 4:
            for i in 0..<count {
                dst.storeBytes(
                    of: src.load(fromByteOffset: i * stride * 4, as: UInt32.self), toByteOffset: i * 4, as: UInt32.self)
            }
        case 8:
            for i in 0..<count {
                dst.storeBytes(
                    of: src.load(fromByteOffset: i * stride * 8, as: UInt64.self), toByteOffset: i * 8, as: UInt64.self)
            }
        case 2:
            for i in 0..<count {
                dst.storeBytes(
                    of: src.load(fromByteOffset: i * stride * 2, as: UInt16.self), toByteOffset: i * 2, as: UInt16.self)
            }
        case 1:
            for i in 0..<count {
                dst.storeBytes(
                    of: src.load(fromByteOffset: i * stride, as: UInt8.self), toByteOffset: i, as: UInt8.self)
            }
        default: for i in 0..<count { (dst + i * es).copyMemory(from: src + i * stride * es, byteCount: es) }
        }
    }

    /// A new tensor whose axis d has `maps[d].count` entries; entry j reads source coordinate `maps[d][j]`, or
    /// `fill` (one element of the source dtype; zero when nil) when any coordinate is negative.
    static func mapped(_ source: Tensor, maps: [[Int]], fill: Tensor?, threads: Int) -> Tensor {
        let shape = maps.map(\.count)
        let n = Tensor.elementCount(shape)
        let strides = Broadcast.strides(source.shape)
        let last = maps.last ?? [0]
        let outerMaps = Array(maps.dropLast())
        let outerStrides = Array(strides.dropLast())
        let innerStride = strides.last ?? 1
        let outerCount = last.isEmpty ? 0 : n / last.count
        /// Source offset of outer row `o`, or nil when that row is all fill.
        func rowBase(_ o: Int) -> Int? {
            var rem = o
            var base = 0
            for d in stride(from: outerMaps.count - 1, through: 0, by: -1) {
                let m = outerMaps[d][rem % outerMaps[d].count]
                rem /= outerMaps[d].count
                if m < 0 { return nil }
                base += m * outerStrides[d]
            }
            return base
        }
        if source.dtype == .string {
            let src = source.storage.strings
            let f = fill?.strings.first ?? ""
            var out: [String] = []
            out.reserveCapacity(n)
            for o in 0..<outerCount {
                let base = rowBase(o)
                for m in last {
                    if let base, m >= 0 { out.append(src[base + m * innerStride]) } else { out.append(f) }
                }
            }
            return Tensor(shape: shape, strings: out)
        }
        let result = Tensor(zeros: source.dtype, shape: shape)
        guard n > 0 else { return result }
        let es = source.dtype.byteSize
        let src = UnsafeRawPointer(source.storage.bytes)
        let dst = result.storage.bytes
        let fillBytes = fill.map { UnsafeRawPointer($0.storage.bytes) }
        defer { withExtendedLifetime(fill) {} }
        // Runs of the innermost map that read consecutive source elements (or all fill) copy as one block.
        var runs: [(at: Int, from: Int, count: Int)] = []
        for (j, m) in last.enumerated() {
            if let r = runs.last, (m < 0 && r.from < 0) || (m >= 0 && r.from >= 0 && m == r.from + r.count),
                innerStride == 1 || m < 0
            {
                runs[runs.count - 1].count += 1
            } else {
                runs.append((j, m, 1))
            }
        }
        Parallel.forEach(outerCount, threads: threads, minimumChunk: max(1, 16384 / max(last.count, 1))) { range in
            for o in range {
                let row = dst + o * last.count * es
                let base = rowBase(o)
                for r in runs {
                    if let base, r.from >= 0 {
                        (row + r.at * es).copyMemory(
                            from: src + (base + r.from * innerStride) * es, byteCount: r.count * es)
                    } else if let fillBytes {
                        for j in r.at..<(r.at + r.count) { (row + j * es).copyMemory(from: fillBytes, byteCount: es) }
                    }
                }
            }
        }
        return result
    }

    /// A one-element tensor of `dtype` holding `value` (for pad values and fills).
    static func scalar(_ dtype: DType, _ value: Double) throws -> Tensor {
        if dtype == .string { return Tensor(shape: [], strings: [""]) }
        return try dtype.visit(ScalarMaker(value: value))
    }

    struct ScalarMaker: ScalarVisitor {
        let value: Double
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor { Tensor(scalar: T(castingFrom: value)) }
    }
}
