import KilnIR
import KilnRuntime

/// Kernels for the data-movement layers: reshape (zero-copy), transpose, concat, split, slice, expand, tile,
/// pad, depth/space, and (in the `ShapeKernels+*.swift` files) generators and resampling.
enum ShapeKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = core + generation + resampling

    static let core: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(ReshapeLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let runtime = try inputs.optionalTensor(1)?.intValues()
            return [.tensor(try x.reshaped(layer.outputShape(x.shape, runtime: runtime)))]
        },
        cpuKernel(TransposeLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            return [.tensor(ShapeCopy.permuted(x, try layer.permutation(rank: x.rank), threads: context.threads))]
        },
        cpuKernel(ConcatLayer.self) { layer, inputs, context in
            let parts = try (0..<inputs.count).map { try inputs.tensor($0) }
            return [.tensor(try concat(parts, axis: layer.axis, threads: context.threads))]
        },
        cpuKernel(SplitLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let a = try ShapeAxes.normalize(layer.axis, rank: x.rank)
            let pieces = try layer.pieces(length: x.shape[a], runtime: try inputs.optionalTensor(1)?.intValues())
            let strides = Broadcast.strides(x.shape)
            var start = 0
            return pieces.map { n in
                var shape = x.shape
                shape[a] = n
                defer { start += n }
                return .tensor(
                    ShapeCopy.strided(
                        x, offset: start * strides[a], strides: strides, shape: shape,
                        threads: context.threads))
            }
        },
        cpuKernel(SliceLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let ranges: [SliceLayer.Range]
            if layer.isStatic, let s = layer.starts, let e = layer.ends {
                ranges = try SliceLayer.resolve(
                    shape: x.shape, starts: s, ends: e, axes: layer.axes, steps: layer.steps)
            } else {
                ranges = try SliceLayer.resolve(
                    shape: x.shape, starts: try layer.starts ?? inputs.tensor(1).intValues(),
                    ends: try layer.ends ?? inputs.tensor(2).intValues(),
                    axes: try layer.axes ?? inputs.optionalTensor(3)?.intValues(),
                    steps: try layer.steps ?? inputs.optionalTensor(4)?.intValues())
            }
            let strides = Broadcast.strides(x.shape)
            var offset = 0
            for (r, s) in zip(ranges, strides) { offset += r.start * s }
            return [
                .tensor(
                    ShapeCopy.strided(
                        x, offset: offset, strides: zip(ranges, strides).map { $0.step * $1 },
                        shape: ranges.map(\.count), threads: context.threads))
            ]
        },
        cpuKernel(ExpandLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let spec = try layer.shape ?? inputs.tensor(1).intValues()
            let shape = try Broadcast.shape(x.shape, spec)
            _ = try ShapeAxes.checkedCount(shape)
            return [
                .tensor(
                    ShapeCopy.strided(
                        x, offset: 0, strides: Broadcast.strides(of: x.shape, broadcastTo: shape),
                        shape: shape, threads: context.threads))
            ]
        },
        cpuKernel(TileLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let repeats = try layer.repeats ?? inputs.tensor(1).intValues()
            guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
                throw KilnError.invalidArgument("tile repeats \(repeats) for shape \(x.shape)")
            }
            _ = try ShapeAxes.checkedCount(
                zip(x.shape, repeats).map { $0.multipliedReportingOverflow(by: $1).overflow ? -1 : $0 * $1 })
            // Tile is a broadcast of the input viewed as [1, d0, 1, d1, ...] to [r0, d0, r1, d1, ...].
            let strides = Broadcast.strides(x.shape)
            var shape: [Int] = []
            var view: [Int] = []
            for (i, r) in repeats.enumerated() {
                shape += [r, x.shape[i]]
                view += [0, strides[i]]
            }
            let tiled = ShapeCopy.strided(x, offset: 0, strides: view, shape: shape, threads: context.threads)
            return [.tensor(try tiled.reshaped(zip(x.shape, repeats).map { $0 * $1 }))]
        },
        cpuKernel(PadLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let pads = try layer.pads ?? inputs.tensor(1).intValues()
            let axes = try layer.axes ?? inputs.optionalTensor(3)?.intValues()
            let per = try PadLayer.perAxis(pads: pads, axes: axes, rank: x.rank)
            var fill: Tensor
            if let v = try inputs.optionalTensor(2), v.count == 1, v.dtype == x.dtype {
                fill = v
            } else {
                fill = try ShapeCopy.scalar(x.dtype, layer.value ?? 0)
            }
            if x.dtype == .string, fill.dtype != .string { fill = Tensor(shape: [], strings: [""]) }
            let maps = try zip(x.shape, per).map { d, p in try padMap(length: d, begin: p.0, end: p.1, mode: layer.mode)
            }
            return [.tensor(ShapeCopy.mapped(x, maps: maps, fill: fill, threads: context.threads))]
        },
        cpuKernel(CenterCropPadLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let sizes = try inputs.tensor(1).intValues()
            let axes = try ShapeAxes.normalize(layer.axes ?? Array(0..<x.rank), rank: x.rank)
            guard axes.count == sizes.count, sizes.allSatisfy({ $0 >= 0 }) else {
                throw KilnError.invalidArgument("center crop shape \(sizes) for axes \(axes)")
            }
            var target = x.shape
            for (a, t) in zip(axes, sizes) { target[a] = t }
            _ = try ShapeAxes.checkedCount(target)
            var maps = x.shape.map { Array(0..<$0) }
            for (a, t) in zip(axes, sizes) {
                let d = x.shape[a]
                let shift = t <= d ? (d - t) / 2 : -((t - d) / 2)
                maps[a] = (0..<t).map { o in o + shift >= 0 && o + shift < d ? o + shift : -1 }
            }
            return [.tensor(ShapeCopy.mapped(x, maps: maps, fill: nil, threads: context.threads))]
        },
        cpuKernel(DepthSpaceLayer.self) { layer, inputs, context in
            [.tensor(try depthSpace(layer, try inputs.tensor(0), threads: context.threads))]
        },
    ]

    static func concat(_ parts: [Tensor], axis: Int, threads: Int) throws -> Tensor {
        guard let first = parts.first else { throw KilnError.invalidArgument("concat needs inputs") }
        let a = try ShapeAxes.normalize(axis, rank: first.rank)
        var shape = first.shape
        shape[a] = 0
        for p in parts {
            guard p.rank == first.rank, p.dtype == first.dtype,
                (0..<p.rank).allSatisfy({ $0 == a || p.shape[$0] == first.shape[$0] })
            else { throw KilnError.shapeMismatch("concat of \(first.type) and \(p.type) on axis \(a)") }
            shape[a] += p.shape[a]
        }
        let outer = Tensor.elementCount(Array(first.shape[..<a]))
        let inner = Tensor.elementCount(Array(first.shape[(a + 1)...]))
        let chunks = parts.map { $0.shape[a] * inner }
        let row = shape[a] * inner
        if first.dtype == .string {
            var out: [String] = []
            out.reserveCapacity(outer * row)
            for o in 0..<outer {
                for (p, c) in zip(parts, chunks) { out += p.storage.strings[(o * c)..<((o + 1) * c)] }
            }
            return Tensor(shape: shape, strings: out)
        }
        let result = Tensor(zeros: first.dtype, shape: shape)
        let es = first.dtype.byteSize
        let dst = result.storage.bytes
        let sources = parts.map { UnsafeRawPointer($0.storage.bytes) }
        withExtendedLifetime(parts) {
            Parallel.forEach(outer, threads: threads, minimumChunk: max(1, 32768 / max(row, 1))) { range in
                for o in range {
                    var at = dst + o * row * es
                    for (src, c) in zip(sources, chunks) where c > 0 {
                        at.copyMemory(from: src + o * c * es, byteCount: c * es)
                        at += c * es
                    }
                }
            }
        }
        return result
    }

    /// Source coordinates for one padded axis: -1 where the constant fills.
    static func padMap(length d: Int, begin: Int, end: Int, mode: PadLayer.Mode) throws -> [Int] {
        let (partial, o1) = d.addingReportingOverflow(begin)
        let (n, o2) = partial.addingReportingOverflow(end)
        guard !o1, !o2, n <= 1 << 34 else { throw KilnError.invalidArgument("pads \(begin), \(end) are too large") }
        guard n >= 0 else { throw KilnError.invalidArgument("pads \(begin), \(end) remove more than \(d) elements") }
        if mode != .constant && d == 0 && n > 0 {
            throw KilnError.invalidArgument("\(mode.rawValue) padding of an empty axis")
        }
        return (0..<n).map { o in
            let i = o - begin
            if i >= 0 && i < d { return i }
            switch mode {
            case .constant: return -1
            case .edge: return min(max(i, 0), d - 1)
            case .wrap: return ((i % d) + d) % d
            case .reflect:
                guard d > 1 else { return 0 }
                let period = 2 * (d - 1)
                let r = ((i % period) + period) % period
                return r < d ? r : period - r
            }
        }
    }

    static func depthSpace(_ layer: DepthSpaceLayer, _ x: Tensor, threads: Int) throws -> Tensor {
        guard x.rank == 4 else { throw KilnError.shapeMismatch("\(layer.direction.rawValue) needs a 4-D input") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let b = layer.blockSize
        guard b > 0, b < 1 << 16 else { throw KilnError.invalidArgument("blocksize \(b)") }
        let view: [Int]
        let perm: [Int]
        let out: [Int]
        switch (layer.direction, layer.mode) {
        case (.depthToSpace, _):
            guard c % (b * b) == 0 else { throw KilnError.shapeMismatch("channels \(c) not divisible by \(b * b)") }
            if layer.mode == .dcr {
                view = [n, b, b, c / (b * b), h, w]
                perm = [0, 3, 4, 1, 5, 2]
            } else {
                view = [n, c / (b * b), b, b, h, w]
                perm = [0, 1, 4, 2, 5, 3]
            }
            out = [n, c / (b * b), h * b, w * b]
        case (.spaceToDepth, _):
            guard h % b == 0, w % b == 0 else {
                throw KilnError.shapeMismatch("spatial \(h)x\(w) not divisible by \(b)")
            }
            view = [n, c, h / b, b, w / b, b]
            perm = layer.mode == .dcr ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
            out = [n, c * b * b, h / b, w / b]
        }
        let strides = Broadcast.strides(view)
        let moved = ShapeCopy.strided(
            x, offset: 0, strides: perm.map { strides[$0] }, shape: perm.map { view[$0] },
            threads: threads)
        return try moved.reshaped(out)
    }
}
