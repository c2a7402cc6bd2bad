/// Strided slice (ONNX Slice). Each parameter list given as nil comes from the ONNX input of the same role at
/// run time (1 starts, 2 ends, 3 axes, 4 steps); absent axes mean the leading axes, absent steps mean 1.
public struct SliceLayer: Layer {
    public static let kind = LayerKind("slice")
    public var starts: [Int]?
    public var ends: [Int]?
    public var axes: [Int]?
    public var steps: [Int]?
    /// Whether `axes` / `steps` are known at import (nil then means the default, not a run-time input).
    public var isStatic: Bool

    public init(starts: [Int]?, ends: [Int]?, axes: [Int]?, steps: [Int]?, isStatic: Bool) {
        self.starts = starts
        self.ends = ends
        self.axes = axes
        self.steps = steps
        self.isStatic = isStatic
    }

    /// A static slice's axes and steps are shown where given (absent: the leading axes, steps of 1).
    public var description: String {
        guard isStatic else { return "dynamic" }
        var text = "starts=\(ShapeAxes.list(starts)),ends=\(ShapeAxes.list(ends))"
        if let axes { text += ",axes=\(ShapeAxes.list(axes))" }
        if let steps { text += ",steps=\(ShapeAxes.list(steps))" }
        return text
    }

    /// One resolved axis: first index, step and element count.
    public struct Range: Sendable, Hashable, Codable {
        public var start: Int
        public var step: Int
        public var count: Int

        public init(start: Int, step: Int, count: Int) {
            self.start = start
            self.step = step
            self.count = count
        }
    }

    /// Resolves ONNX slice parameters against a concrete shape, clamping as the spec says.
    public static func resolve(
        shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
    ) throws -> [Range] {
        let rank = shape.count
        let ax = try ShapeAxes.normalize(axes ?? Array(0..<starts.count), rank: rank)
        let st = steps ?? Array(repeating: 1, count: starts.count)
        guard starts.count == ends.count, ax.count == starts.count, st.count == starts.count else {
            throw KilnError.invalidArgument("slice starts/ends/axes/steps differ in length")
        }
        var ranges = shape.map { Range(start: 0, step: 1, count: $0) }
        for (i, a) in ax.enumerated() {
            let d = shape[a]
            let step = st[i]
            guard step != 0 else { throw KilnError.invalidArgument("slice step is 0") }
            var s = starts[i] < 0 ? starts[i] &+ d : starts[i]
            var e = ends[i] < 0 ? ends[i] &+ d : ends[i]
            let count: Int
            if step > 0 {
                s = min(max(s, 0), d)
                e = min(max(e, 0), d)
                count = e > s ? (e - s - 1) / step + 1 : 0
            } else {
                s = min(max(s, 0), d - 1)
                e = min(max(e, -1), d - 1)
                let magnitude = step == Int.min ? Int.max : -step
                count = s > e ? (s - e - 1) / magnitude + 1 : 0
            }
            // With one element the step never applies; 1 keeps later stride products from overflowing.
            ranges[a] = Range(start: count > 0 ? s : 0, step: count > 1 ? step : 1, count: count)
        }
        return ranges
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let dims = ShapeAxes.dims(inputs, 0) else { return [.tensor(TensorType(dtype, nil))] }
        var s = starts
        var e = ends
        var a = axes
        var st = steps
        if !isStatic {
            s = s ?? ShapeAxes.constantInts(inputs, 1)
            e = e ?? ShapeAxes.constantInts(inputs, 2)
            let hasAxes = inputs.count > 3 && inputs[3].isPresent
            let hasSteps = inputs.count > 4 && inputs[4].isPresent
            if a == nil && hasAxes { a = ShapeAxes.constantInts(inputs, 3) }
            if st == nil && hasSteps { st = ShapeAxes.constantInts(inputs, 4) }
            if (hasAxes && a == nil) || (hasSteps && st == nil) { s = nil }
        }
        guard let s, let e else {
            return [.tensor(TensorType(dtype, Array(repeating: .unknown, count: dims.count)))]
        }
        // Axes not sliced keep their (possibly symbolic) dims; sliced ones need a known size.
        let rank = dims.count
        let ax = try ShapeAxes.normalize(a ?? Array(0..<s.count), rank: rank)
        var out = dims
        for (i, axis) in ax.enumerated() {
            guard let d = dims[axis].value else {
                out[axis] = .unknown
                continue
            }
            let r = try Self.resolve(shape: [d], starts: [s[i]], ends: [e[i]], axes: [0], steps: st.map { [$0[i]] })
            out[axis] = .value(r[0].count)
        }
        return [.tensor(TensorType(dtype, out))]
    }
}

/// Broadcasts the input to a shape (ONNX Expand); `shape` nil comes from input 1.
public struct ExpandLayer: Layer {
    public static let kind = LayerKind("expand")
    public var shape: [Int]?
    public init(shape: [Int]?) { self.shape = shape }
    public var description: String { "shape=\(ShapeAxes.list(shape))" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        // The shape: fixed, a constant, or a shape computation whose values type inference knows.
        let spec = (shape ?? ShapeAxes.constantInts(inputs, 1)).map { $0.map { Dim.value($0) } }
        guard let dims = ShapeAxes.dims(inputs, 0), let s = spec ?? (inputs.count > 1 ? inputs[1].shapeValue : nil)
        else { return [.tensor(TensorType(dtype, nil))] }
        return [.tensor(TensorType(dtype, try Broadcast.dims(dims, s)))]
    }
}

/// Repeats the input along each axis (ONNX Tile); `repeats` nil comes from input 1.
public struct TileLayer: Layer {
    public static let kind = LayerKind("tile")
    public var repeats: [Int]?
    public init(repeats: [Int]?) { self.repeats = repeats }
    public var description: String { "repeats=\(ShapeAxes.list(repeats))" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let dims = ShapeAxes.dims(inputs, 0), let r = repeats ?? ShapeAxes.constantInts(inputs, 1) else {
            return [.tensor(TensorType(dtype, nil))]
        }
        guard r.count == dims.count else { throw KilnError.shapeMismatch("tile repeats \(r) for rank \(dims.count)") }
        return [.tensor(TensorType(dtype, zip(dims, r).map { d, n in d.value.map { .value($0 * n) } ?? .unknown }))]
    }
}

/// Pads (or, with negative pads, crops) the input (ONNX Pad). Parameters nil come from the inputs
/// (1 pads, 2 constant value, 3 axes).
public struct PadLayer: Layer {
    public static let kind = LayerKind("pad")
    public enum Mode: String, Sendable, Codable { case constant, reflect, edge, wrap }
    public var mode: Mode
    public var pads: [Int]?
    public var value: Double?
    public var axes: [Int]?
    public init(mode: Mode, pads: [Int]?, value: Double?, axes: [Int]?) {
        self.mode = mode
        self.pads = pads
        self.value = value
        self.axes = axes
    }
    public var description: String {
        "mode=\(mode.rawValue),pads=\(ShapeAxes.list(pads))\(value.map { ",value=\($0)" } ?? "")"
    }

    /// Per-axis (begin, end) pads for `rank`, from ONNX's [begins..., ends...] over `axes`.
    public static func perAxis(pads: [Int], axes: [Int]?, rank: Int) throws -> [(Int, Int)] {
        let ax = try ShapeAxes.normalize(axes ?? Array(0..<rank), rank: rank)
        guard pads.count == 2 * ax.count else {
            throw KilnError.invalidArgument("pads \(pads) do not match \(ax.count) axes")
        }
        var result = Array(repeating: (0, 0), count: rank)
        for (i, a) in ax.enumerated() { result[a] = (pads[i], pads[i + ax.count]) }
        return result
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let dims = ShapeAxes.dims(inputs, 0), let p = pads ?? ShapeAxes.constantInts(inputs, 1) else {
            return [.tensor(TensorType(dtype, ShapeAxes.dims(inputs, 0).map { $0.map { _ in .unknown } }))]
        }
        let hasAxes = inputs.count > 3 && inputs[3].isPresent
        let ax = axes ?? (hasAxes ? ShapeAxes.constantInts(inputs, 3) : nil)
        if hasAxes && ax == nil { return [.tensor(TensorType(dtype, dims.map { _ in .unknown }))] }
        let per = try Self.perAxis(pads: p, axes: ax, rank: dims.count)
        return [
            .tensor(
                TensorType(
                    dtype,
                    zip(dims, per).map { d, q in
                        q == (0, 0) ? d : (d.value.map { .value($0 + q.0 + q.1) } ?? .unknown)
                    }))
        ]
    }
}

/// Centre-crops or pads each axis to a target size (ONNX CenterCropPad); the sizes are input 1.
public struct CenterCropPadLayer: Layer {
    public static let kind = LayerKind("centerCropPad")
    public var axes: [Int]?
    public init(axes: [Int]?) { self.axes = axes }
    public var description: String { "axes=\(axes.map { ShapeAxes.list($0) } ?? "all")" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard var dims = ShapeAxes.dims(inputs, 0), let sizes = ShapeAxes.constantInts(inputs, 1) else {
            return [.tensor(TensorType(dtype, nil))]
        }
        let ax = try ShapeAxes.normalize(axes ?? Array(0..<dims.count), rank: dims.count)
        guard ax.count == sizes.count else { throw KilnError.invalidArgument("shape and axes differ in length") }
        for (a, s) in zip(ax, sizes) { dims[a] = .value(s) }
        return [.tensor(TensorType(dtype, dims))]
    }
}
