/// The values of the small integer tensors exporters compute shapes with (Shape → Gather/Slice → Concat →
/// Reshape/Expand, for dynamic axes), known symbolically where the shapes they come from are known: the shape
/// of a `[batch, 128]` input is the value `[batch, 128]`. Type inference hands them to layers as
/// `LayerInput.shapeValue`, so a reshape or expand whose shape is computed at run time still gets its output
/// shape, symbolic dims included, and the passes that need shapes see them before an engine is specialized.
enum ShapeValues {
    /// Longer integer tensors are not shapes.
    static let maximumCount = 16

    /// A constant's values when it is an integer tensor of rank 0 or 1 and at most `maximumCount` elements.
    static func constant(_ t: Tensor) -> [Dim]? {
        guard t.rank <= 1, t.count <= maximumCount, t.dtype == .int64 || t.dtype == .int32,
            let values = try? t.intValues()
        else { return nil }
        return values.map { .value($0) }
    }

    /// The values of `layer`'s first output given its inputs, where the layer moves shape values around
    /// (shape, gather, slice, concat, reshape, cast to an integer type, identity); nil otherwise.
    static func output(of layer: any Layer, _ inputs: [LayerInput]) -> [Dim]? {
        func value(_ i: Int) -> [Dim]? { i < inputs.count ? inputs[i].shapeValue : nil }
        switch layer {
        case let shape as ShapeOfLayer:
            guard let dims = inputs.first?.tensorType?.shape else { return nil }
            return Array(dims[shape.range(rank: dims.count)])
        case let concat as ConcatLayer:
            guard concat.axis == 0 || concat.axis == -1 else { return nil }
            var out: [Dim] = []
            for input in inputs {
                guard let v = input.shapeValue, input.tensorType?.rank == 1 else { return nil }
                out += v
            }
            return out.count <= maximumCount ? out : nil
        case let gather as GatherLayer:
            guard gather.axis == 0, let v = value(0), let indices = ShapeAxes.constantInts(inputs, 1) else {
                return nil
            }
            let resolved = indices.map { $0 < 0 ? $0 + v.count : $0 }
            guard resolved.allSatisfy({ v.indices.contains($0) }) else { return nil }
            return resolved.map { v[$0] }
        case let slice as SliceLayer:
            guard let v = value(0) else { return nil }
            return sliced(v, slice, inputs)
        case let cast as CastLayer:
            return cast.to == .int64 || cast.to == .int32 ? value(0) : nil
        case is IdentityLayer, is ReshapeLayer:
            // A reshape of a value of at most one axis keeps its elements in order.
            return inputs.first?.tensorType?.rank.map { $0 <= 1 } == true ? value(0) : nil
        default:
            return nil
        }
    }

    /// A 1-D slice with known starts, ends, axes and steps.
    private static func sliced(_ v: [Dim], _ slice: SliceLayer, _ inputs: [LayerInput]) -> [Dim]? {
        let starts = slice.isStatic ? slice.starts : ShapeAxes.constantInts(inputs, 1)
        let ends = slice.isStatic ? slice.ends : ShapeAxes.constantInts(inputs, 2)
        func optional(_ index: Int, _ fixed: [Int]?) -> [Int]?? {
            if slice.isStatic { return .some(fixed) }
            guard index < inputs.count, inputs[index].isPresent else { return .some(nil) }
            return ShapeAxes.constantInts(inputs, index).map { .some($0) }
        }
        guard let starts, let ends, let axes = optional(3, slice.axes), let steps = optional(4, slice.steps),
            let ranges = try? SliceLayer.resolve(
                shape: [v.count], starts: starts, ends: ends, axes: axes, steps: steps),
            let range = ranges.first
        else { return nil }
        return (0..<range.count).map { v[range.start + $0 * range.step] }
    }
}
