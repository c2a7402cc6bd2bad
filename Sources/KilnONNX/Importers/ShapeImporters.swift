import KilnIR

/// Shape manipulation and data movement: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice,
/// Expand, Tile, Pad, CenterCropPad, DepthToSpace, SpaceToDepth; generators and resampling live in
/// `ShapeImporters+*.swift`. Inputs that ONNX passes as tensors are folded into layer parameters when they are
/// constants at import and stay run-time inputs otherwise.
enum ShapeImporters {
    static let table: [OperatorImporter] = core + generation + resampling

    static let core: [OperatorImporter] = [
        OperatorImporter("Reshape") { c in
            let allowZero = try c.int("allowzero", default: 0) != 0
            if c.version < 5 {
                c.emit(ReshapeLayer(.reshape(shape: try c.ints("shape"), allowZero: false)), inputs: [c.inputs[0]])
            } else if let shape = try constantInts(c, 1) {
                c.emit(ReshapeLayer(.reshape(shape: shape, allowZero: allowZero)), inputs: [c.inputs[0]])
            } else {
                c.emit(ReshapeLayer(.reshape(shape: nil, allowZero: allowZero)))
            }
        },
        .layer("Flatten") { c in ReshapeLayer(.flatten(axis: try c.int("axis", default: 1))) },
        OperatorImporter("Squeeze") { c in
            if c.version < 13 {
                c.emit(ReshapeLayer(.squeeze(axes: try c.optionalInts("axes"))), inputs: [c.inputs[0]])
            } else if !c.hasInput(1) {
                c.emit(ReshapeLayer(.squeeze(axes: nil)), inputs: [c.inputs[0]])
            } else if let axes = try constantInts(c, 1) {
                c.emit(ReshapeLayer(.squeeze(axes: axes)), inputs: [c.inputs[0]])
            } else {
                c.emit(ReshapeLayer(.squeeze(axes: nil)))
            }
        },
        OperatorImporter("Unsqueeze") { c in
            if c.version < 13 {
                c.emit(ReshapeLayer(.unsqueeze(axes: try c.ints("axes"))), inputs: [c.inputs[0]])
            } else if let axes = try constantInts(c, 1) {
                c.emit(ReshapeLayer(.unsqueeze(axes: axes)), inputs: [c.inputs[0]])
            } else {
                c.emit(ReshapeLayer(.unsqueeze(axes: nil)))
            }
        },
        .layer("Transpose") { c in TransposeLayer(perm: try c.optionalInts("perm")) },
        .layer("Concat") { c in ConcatLayer(axis: try c.int("axis", default: c.version < 4 ? 1 : nil)) },
        OperatorImporter("Split") { c in
            let axis = try c.int("axis", default: 0)
            let count = c.outputs.count
            if c.version >= 18, let n = try c.optionalInt("num_outputs"), n != count {
                throw c.invalid("Split num_outputs \(n) but the node has \(count) outputs")
            }
            var sizes = try c.optionalInts("split")
            if c.version >= 13 || (c.version < 2 && c.hasInput(1)) {
                sizes = nil
                if c.hasInput(1) {
                    guard let s = try constantInts(c, 1) else {
                        c.emit(SplitLayer(axis: axis, sizes: nil, outputCount: count))
                        return
                    }
                    sizes = s
                }
            }
            c.emit(SplitLayer(axis: axis, sizes: sizes, outputCount: count), inputs: [c.inputs[0]])
        },
        OperatorImporter("Slice") { c in
            if c.version < 10 {
                let layer = SliceLayer(
                    starts: try c.ints("starts"), ends: try c.ints("ends"), axes: try c.optionalInts("axes"),
                    steps: nil, isStatic: true)
                c.emit(layer, inputs: [c.inputs[0]])
                return
            }
            let starts = try constantInts(c, 1)
            let ends = try constantInts(c, 2)
            let axes = try constantInts(c, 3)
            let steps = try constantInts(c, 4)
            let isStatic = starts != nil && ends != nil && (axes != nil || !c.hasInput(3))
                && (steps != nil || !c.hasInput(4))
            if isStatic {
                c.emit(SliceLayer(starts: starts, ends: ends, axes: axes, steps: steps, isStatic: true),
                    inputs: [c.inputs[0]])
            } else {
                c.emit(SliceLayer(starts: nil, ends: nil, axes: nil, steps: nil, isStatic: false))
            }
        },
        OperatorImporter("Expand", since: 8) { c in
            if let shape = try constantInts(c, 1) {
                c.emit(ExpandLayer(shape: shape), inputs: [c.inputs[0]])
            } else {
                c.emit(ExpandLayer(shape: nil))
            }
        },
        OperatorImporter("Tile", since: 6) { c in
            if let repeats = try constantInts(c, 1) {
                c.emit(TileLayer(repeats: repeats), inputs: [c.inputs[0]])
            } else {
                c.emit(TileLayer(repeats: nil))
            }
        },
        OperatorImporter("Pad") { c in
            let modeName = try c.string("mode", default: "constant")
            guard let mode = PadLayer.Mode(rawValue: modeName) else { throw c.unsupported("Pad mode '\(modeName)'") }
            if c.version < 11 {
                let pads = try c.version < 2 ? c.ints("paddings") : c.ints("pads")
                let value = Double(try c.float("value", default: 0))
                c.emit(PadLayer(mode: mode, pads: pads, value: value, axes: nil), inputs: [c.inputs[0]])
                return
            }
            let pads = try constantInts(c, 1)
            let axes = try constantInts(c, 3)
            let valueInput = c.hasInput(2) ? c.inputs[2] : ""
            if pads != nil && (axes != nil || !c.hasInput(3)) {
                let inputs = valueInput.isEmpty ? [c.inputs[0]] : [c.inputs[0], "", valueInput]
                c.emit(PadLayer(mode: mode, pads: pads, value: nil, axes: axes), inputs: inputs)
            } else {
                c.emit(PadLayer(mode: mode, pads: nil, value: nil, axes: nil))
            }
        },
        .layer("CenterCropPad", since: 18) { c in CenterCropPadLayer(axes: try c.optionalInts("axes")) },
        .layer("DepthToSpace") { c in
            DepthSpaceLayer(.depthToSpace, blockSize: try c.int("blocksize"), mode: try depthMode(c))
        },
        .layer("SpaceToDepth") { c in
            DepthSpaceLayer(.spaceToDepth, blockSize: try c.int("blocksize"), mode: try depthMode(c))
        },
    ]

    static func depthMode(_ c: ImportContext) throws -> DepthSpaceLayer.Mode {
        let name = try c.string("mode", default: "DCR")
        guard let mode = DepthSpaceLayer.Mode(rawValue: name) else { throw c.unsupported("mode '\(name)'") }
        return mode
    }

    /// Input `i`'s integer values when it is a constant at import.
    static func constantInts(_ c: ImportContext, _ i: Int) throws -> [Int]? {
        guard let t = c.constant(i) else { return nil }
        return try withErrorContext("input \(i)") { try t.intValues() }
    }
}
