import KilnIR

/// Shape, Size, ConstantOfShape, Range, EyeLike, Trilu, Dropout; Resize, Upsample, GridSample, AffineGrid.
extension ShapeImporters {
    static let generation: [OperatorImporter] = [
        OperatorImporter("Shape") { c in
            let layer = ShapeOfLayer(start: try c.int("start", default: 0), end: try c.optionalInt("end"))
            // A fully static input shape folds to a constant at import.
            if let shape = c.inputType(0)?.tensorType?.concreteShape, c.outputs.count == 1 {
                c.defineConstant(c.outputs[0], Tensor.int64(Array(shape[layer.range(rank: shape.count)])))
            } else {
                c.emit(layer)
            }
        },
        OperatorImporter("Size") { c in
            if let shape = c.inputType(0)?.tensorType?.concreteShape, c.outputs.count == 1 {
                c.defineConstant(c.outputs[0], Tensor(scalar: Int64(Tensor.elementCount(shape))))
            } else {
                c.emit(SizeLayer())
            }
        },
        .layer("ConstantOfShape", since: 9) { c in
            let value = try c.optionalTensor("value") ?? Tensor(scalar: Float(0))
            guard value.count == 1 else { throw c.invalid("ConstantOfShape value must have one element") }
            return ConstantOfShapeLayer(value: try value.reshaped([]))
        },
        .layer("Range", since: 11) { _ in RangeLayer() },
        .layer("EyeLike", since: 9) { c in
            var dtype: DType? = nil
            if let raw = try c.optionalInt("dtype") {
                guard let d = DType(rawValue: raw) else { throw c.unsupported("EyeLike dtype \(raw)") }
                dtype = d
            }
            return EyeLikeLayer(dtype: dtype, k: try c.int("k", default: 0))
        },
        .layer("Trilu", since: 14) { c in TriluLayer(upper: try c.int("upper", default: 1) != 0) },
        OperatorImporter("Dropout") { c in
            // Before opset 12 ratio was an attribute and inference never drops; later, inputs decide.
            if c.version < 12 {
                c.emit(DropoutLayer(), inputs: [c.inputs[0]])
            } else {
                c.emit(DropoutLayer())
            }
        },
    ]

    static let resampling: [OperatorImporter] = [
        OperatorImporter("Resize", since: 10) { c in
            var p = ResizeLayer.Parameters()
            let modeName = try c.string("mode", default: "nearest")
            guard let mode = ResizeLayer.Mode(rawValue: modeName) else { throw c.unsupported("Resize mode '\(modeName)'") }
            p.mode = mode
            let x = c.inputs[0]
            if c.version < 11 {
                // Opset 10 resizes like Upsample: asymmetric coordinates, nearest rounds down.
                p.coordinateMode = .asymmetric
                p.nearestMode = .floor
                try emitResize(c, p, inputs: [x, "", c.hasInput(1) ? c.inputs[1] : ""], scalesIndex: 1, sizesIndex: nil)
                return
            }
            let coordinate = try c.string("coordinate_transformation_mode", default: "half_pixel")
            guard let cm = ResizeLayer.CoordinateMode(rawValue: coordinate) else {
                throw c.unsupported("coordinate_transformation_mode '\(coordinate)'")
            }
            p.coordinateMode = cm
            let nearest = try c.string("nearest_mode", default: "round_prefer_floor")
            guard let nm = ResizeLayer.NearestMode(rawValue: nearest) else { throw c.unsupported("nearest_mode '\(nearest)'") }
            p.nearestMode = nm
            p.cubicA = Double(try c.float("cubic_coeff_a", default: -0.75))
            p.excludeOutside = try c.int("exclude_outside", default: 0) != 0
            p.extrapolationValue = Double(try c.float("extrapolation_value", default: 0))
            p.antialias = try c.int("antialias", default: 0) != 0
            let policy = try c.string("keep_aspect_ratio_policy", default: "stretch")
            guard let ap = ResizeLayer.AspectPolicy(rawValue: policy) else {
                throw c.unsupported("keep_aspect_ratio_policy '\(policy)'")
            }
            p.aspectPolicy = ap
            p.axes = try c.optionalInts("axes")
            let names = (0..<4).map { c.hasInput($0) ? c.inputs[$0] : "" }
            try emitResize(c, p, inputs: names, scalesIndex: 2, sizesIndex: 3)
        },
        OperatorImporter("Upsample", since: 7) { c in
            var p = ResizeLayer.Parameters()
            let modeName = try c.string("mode", default: "nearest")
            switch modeName {
            case "nearest": p.mode = .nearest
            case "linear", "bilinear": p.mode = .linear
            default: throw c.unsupported("Upsample mode '\(modeName)'")
            }
            p.coordinateMode = .asymmetric
            p.nearestMode = .floor
            if c.version < 9 {
                let scales = try c.floats("scales").map { Double($0) }
                c.emit(ResizeLayer(p, scales: scales, sizes: nil), inputs: [c.inputs[0]])
            } else {
                try emitResize(c, p, inputs: [c.inputs[0], "", c.hasInput(1) ? c.inputs[1] : ""], scalesIndex: 1,
                    sizesIndex: nil)
            }
        },
        .layer("GridSample", since: 16) { c in
            let modeName = try c.string("mode", default: c.version < 20 ? "bilinear" : "linear")
            let mode: GridSampleLayer.Mode
            switch modeName {
            case "bilinear", "linear": mode = .linear
            case "nearest": mode = .nearest
            case "bicubic", "cubic": mode = .cubic
            default: throw c.unsupported("GridSample mode '\(modeName)'")
            }
            let paddingName = try c.string("padding_mode", default: "zeros")
            guard let padding = GridSampleLayer.Padding(rawValue: paddingName) else {
                throw c.unsupported("GridSample padding_mode '\(paddingName)'")
            }
            return GridSampleLayer(mode: mode, padding: padding, alignCorners: try c.int("align_corners", default: 0) != 0)
        },
        .layer("AffineGrid", since: 20) { c in AffineGridLayer(alignCorners: try c.int("align_corners", default: 0) != 0) },
    ]

    /// Emits a resize over inputs normalised to [X, roi, scales, sizes], folding constant scales or sizes.
    /// `inputs` are in the op's own order; `scalesIndex` / `sizesIndex` say where those sit in it.
    static func emitResize(
        _ c: ImportContext, _ p: ResizeLayer.Parameters, inputs: [String], scalesIndex: Int, sizesIndex: Int?
    ) throws {
        var scales = try c.constant(scalesIndex).map { try $0.doubleValues() }
        var sizes = try sizesIndex.flatMap { c.constant($0) }.map { try $0.intValues() }
        if scales?.isEmpty == true { scales = nil }
        if sizes?.isEmpty == true { sizes = nil }
        let scalesDynamic = c.hasInput(scalesIndex) && c.constant(scalesIndex) == nil
        let sizesDynamic = sizesIndex.map { c.hasInput($0) && c.constant($0) == nil } ?? false
        var normalized = inputs + Array(repeating: "", count: max(0, 4 - inputs.count))
        if !scalesDynamic { normalized[2] = "" }
        if !sizesDynamic { normalized[3] = "" }
        if p.coordinateMode != .tfCropAndResize { normalized[1] = "" }
        while normalized.last == "" { normalized.removeLast() }
        c.emit(ResizeLayer(p, scales: scales, sizes: sizes), inputs: normalized)
    }
}
