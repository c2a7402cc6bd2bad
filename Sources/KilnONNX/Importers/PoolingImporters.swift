import KilnIR

/// MaxPool, AveragePool, LpPool, their Global forms, MaxUnpool, MaxRoiPool and RoiAlign onto the pool,
/// maxUnpool and roiPool layers.
enum PoolingImporters {
    static let table: [OperatorImporter] = [
        OperatorImporter("MaxPool", since: 1) { c in
            let order = try c.int("storage_order", default: 0)
            guard order == 0 || order == 1 else { throw c.invalid("storage_order must be 0 or 1, is \(order)") }
            let indices = c.outputs.count > 1 && !c.outputs[1].isEmpty
            let layer = PoolLayer(
                op: .max, window: try window(c), columnMajorIndices: order == 1, outputsIndices: indices)
            c.emit(layer, outputs: Array(c.outputs.prefix(2)))
        },
        .layer("AveragePool", since: 1) { c in
            let include = try c.int("count_include_pad", default: 0) != 0
            return PoolLayer(op: .average(countIncludePad: include), window: try window(c))
        },
        .layer("LpPool", since: 1) { c in
            PoolLayer(op: .lp(p: try c.float("p", default: 2)), window: try window(c))
        },
        .layer("GlobalMaxPool", since: 1) { _ in PoolLayer(op: .max, window: nil) },
        .layer("GlobalAveragePool", since: 1) { _ in PoolLayer(op: .average(countIncludePad: false), window: nil) },
        .layer("GlobalLpPool", since: 1) { c in PoolLayer(op: .lp(p: try c.float("p", default: 2)), window: nil) },
        OperatorImporter("MaxUnpool", since: 9) { c in
            let kernel = try c.ints("kernel_shape")
            let geometry = PoolGeometry(
                kernel: kernel, strides: try c.optionalInts("strides"), pads: try c.optionalInts("pads"))
            try geometry.validate(spatialRank: kernel.count)
            c.emit(MaxUnpoolLayer(window: geometry))
        },
        .layer("MaxRoiPool", since: 1) { c in
            let pooled = try c.ints("pooled_shape")
            guard pooled.count == 2, pooled.allSatisfy({ $0 > 0 }) else {
                throw c.invalid("pooled_shape must be two positive sizes, is \(pooled)")
            }
            return RoiPoolLayer(
                method: .quantizedMax, outputHeight: pooled[0], outputWidth: pooled[1],
                spatialScale: try c.float("spatial_scale", default: 1))
        },
        .layer("RoiAlign", since: 10) { c in
            let mode = try c.string("mode", default: "avg")
            guard mode == "avg" || mode == "max" else { throw c.invalid("RoiAlign mode '\(mode)' is not avg or max") }
            let transform = try c.string(
                "coordinate_transformation_mode", default: c.version >= 16 ? "half_pixel" : "output_half_pixel")
            guard transform == "half_pixel" || transform == "output_half_pixel" else {
                throw c.invalid("RoiAlign coordinate_transformation_mode '\(transform)' is not supported")
            }
            let height = try c.int("output_height", default: 1)
            let width = try c.int("output_width", default: 1)
            guard height > 0, width > 0 else { throw c.invalid("RoiAlign output size must be positive") }
            return RoiPoolLayer(
                method: .align(
                    max: mode == "max", samplingRatio: max(0, try c.int("sampling_ratio", default: 0)),
                    halfPixel: transform == "half_pixel"),
                outputHeight: height, outputWidth: width, spatialScale: try c.float("spatial_scale", default: 1))
        },
    ]

    /// The window attributes shared by MaxPool, AveragePool and LpPool.
    private static func window(_ c: ImportContext) throws -> PoolGeometry {
        let kernel = try c.ints("kernel_shape")
        let autoPad: PoolGeometry.AutoPad
        switch try c.string("auto_pad", default: "NOTSET") {
        case "NOTSET", "": autoPad = .explicit
        case "SAME_UPPER": autoPad = .sameUpper
        case "SAME_LOWER": autoPad = .sameLower
        case "VALID": autoPad = .valid
        case let other: throw c.invalid("auto_pad '\(other)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        let geometry = PoolGeometry(
            kernel: kernel, strides: try c.optionalInts("strides"), dilations: try c.optionalInts("dilations"),
            pads: try c.optionalInts("pads"), autoPad: autoPad, ceilMode: try c.int("ceil_mode", default: 0) != 0)
        try geometry.validate(spatialRank: kernel.count)
        return geometry
    }
}
