import KilnIR

/// Where the elements of a tensor lie in a stored, dense tensor. Each axis is one or more parts of
/// (size, stride), outermost part first: the axis index runs through its parts in row-major order, so an axis
/// made by merging axes that are not adjacent in memory (heads and batch of a sequence-first layout) is still
/// exact. Reshapes, transposes, static slices and constant-index gathers of a stored tensor are all such views,
/// so a chain of them composes into one view, and a layer that reads or writes through views needs no copies.
struct StridedView: Equatable {
    struct Part: Equatable {
        var size: Int
        var stride: Int
    }

    var axes: [[Part]]
    var offset: Int

    /// The dense tensor itself.
    init(dense shape: [Int]) {
        axes = zip(shape, Broadcast.strides(shape)).map { [Part(size: $0.0, stride: $0.1)] }
        offset = 0
    }

    init(shape: [Int], strides: [Int], offset: Int) {
        axes = zip(shape, strides).map { [Part(size: $0.0, stride: $0.1)] }
        self.offset = offset
    }

    var shape: [Int] { axes.map { $0.reduce(1) { $0 * $1.size } } }

    /// One stride per axis, or nil when an axis still needs several (its parts are not evenly spaced).
    var strides: [Int]? {
        var result: [Int] = []
        for axis in axes {
            let parts = Self.merged(axis)
            switch parts.count {
            case 0: result.append(0)
            case 1: result.append(parts[0].stride)
            default: return nil
            }
        }
        return result
    }

    /// The view after `Transpose(perm)`: result axis `i` is this view's axis `perm[i]`.
    func transposed(_ perm: [Int]) -> StridedView {
        var v = self
        v.axes = perm.map { axes[$0] }
        return v
    }

    /// The view whose transpose by `perm` is this view.
    func untransposed(_ perm: [Int]) -> StridedView {
        var v = self
        for (i, p) in perm.enumerated() { v.axes[p] = axes[i] }
        return v
    }

    /// The view after a static slice (one range per axis); a sliced axis must have evenly spaced elements.
    func sliced(_ ranges: [SliceLayer.Range]) -> StridedView? {
        guard ranges.count == axes.count, let strides else { return nil }
        var v = self
        for (a, r) in ranges.enumerated() where r.count != shape[a] || r.start != 0 || r.step != 1 {
            v.offset += r.start * strides[a]
            v.axes[a] = [Part(size: r.count, stride: strides[a] * r.step)]
        }
        return v
    }

    /// The view after selecting `index` of `axis` (a gather with a one-element constant index); `keep` keeps the
    /// axis with size 1 (an index of shape [1]).
    func selecting(_ index: Int, of axis: Int, keep: Bool) -> StridedView? {
        guard axis < axes.count, let strides, index >= 0, index < shape[axis] else { return nil }
        var v = self
        v.offset += index * strides[axis]
        if keep { v.axes[axis] = [] } else { v.axes.remove(at: axis) }
        return v
    }

    /// The same elements read under `newShape` (row-major order), or nil when the element counts differ or an
    /// axis boundary falls inside a part that does not divide there.
    func reshaped(_ newShape: [Int]) -> StridedView? {
        guard shape.reduce(1, *) == newShape.reduce(1, *), !newShape.contains(0) else { return nil }
        var parts = axes.flatMap { $0 }.filter { $0.size != 1 }
        var result: [[Part]] = []
        for size in newShape {
            var need = size
            var axis: [Part] = []
            while need > 1 {
                guard let part = parts.first else { return nil }
                if need % part.size == 0 {
                    axis.append(part)
                    parts.removeFirst()
                    need /= part.size
                } else if part.size % need == 0 {
                    // Split the part: its outer `need` steps belong to this axis, the rest to the next ones.
                    let inner = part.size / need
                    axis.append(Part(size: need, stride: part.stride * inner))
                    parts[0] = Part(size: inner, stride: part.stride)
                    need = 1
                } else {
                    return nil
                }
            }
            result.append(axis)
        }
        guard parts.isEmpty else { return nil }
        var v = self
        v.axes = result
        return v
    }

    /// Whether `node` is a shuffle whose result is a view of its first input: a reshape, transpose, static slice or
    /// gather of one constant index.
    static func isView(_ node: Node, in graph: Graph) -> Bool {
        if let slice = node.layer as? SliceLayer { return slice.isStatic }
        if node.layer is GatherLayer { return node.inputs.count == 2 && graph.initializers[node.inputs[1]]?.count == 1 }
        return node.layer is ReshapeLayer || node.layer is TransposeLayer
    }

    /// This view after the view node `node` (see `isView`), whose result has shape `out`.
    func through(_ node: Node, giving out: [Int], in graph: Graph) -> StridedView? {
        switch node.layer {
        case let gather as GatherLayer:
            guard let index = graph.initializers[node.inputs[1]], var i = try? index.intValues().first,
                let axis = try? ShapeAxes.normalize(gather.axis, rank: shape.count)
            else { return nil }
            if i < 0 { i += shape[axis] }
            return selecting(i, of: axis, keep: index.rank > 0)
        case let transpose as TransposeLayer:
            return (try? transpose.permutation(rank: shape.count)).map(transposed)
        case let slice as SliceLayer:
            guard let starts = slice.starts, let ends = slice.ends,
                let ranges = try? SliceLayer.resolve(
                    shape: shape, starts: starts, ends: ends, axes: slice.axes, steps: slice.steps)
            else { return nil }
            return sliced(ranges)
        default:
            return reshaped(out)
        }
    }

    /// The view of `node`'s input whose step through the reshape or transpose `node` (of input shape `input`)
    /// is this view: the same step taken backwards, for results written through a chain of shuffles.
    func before(_ node: Node, input: [Int]) -> StridedView? {
        if let transpose = node.layer as? TransposeLayer {
            return (try? transpose.permutation(rank: input.count)).map(untransposed)
        }
        return reshaped(input)
    }

    /// Parts joined where the outer one continues exactly where the inner one ends; size-1 parts dropped.
    private static func merged(_ parts: [Part]) -> [Part] {
        var result: [Part] = []
        for part in parts where part.size != 1 {
            if let last = result.last, last.stride == part.stride * part.size {
                result[result.count - 1] = Part(size: last.size * part.size, stride: part.stride)
            } else {
                result.append(part)
            }
        }
        return result
    }
}
