import KilnIR

/// Reduce*, ArgMax/ArgMin, Softmax/LogSoftmax/Hardmax, CumSum/CumProd and TopK onto the reduce, argReduce,
/// softmax, cumulative and topK layers.
enum ReductionImporters {
    static let table: [OperatorImporter] =
        reduceOps.map { name, op, axesInputVersion in
            OperatorImporter(name, since: 1) { c in try importReduce(c, op: op, axesInputVersion: axesInputVersion) }
        } + [
            argReduce("ArgMax", .max),
            argReduce("ArgMin", .min),
            softmax("Softmax", .softmax),
            softmax("LogSoftmax", .logSoftmax),
            softmax("Hardmax", .hardmax),
            cumulative("CumSum", .sum, since: 11),
            cumulative("CumProd", .prod, since: 26),
            OperatorImporter("TopK", since: 1) { c in
                let axis = try c.int("axis", default: -1)
                let largest = try c.int("largest", default: 1) != 0
                let sorted = try c.int("sorted", default: 1) != 0
                if c.version < 10 {
                    c.emit(
                        TopKLayer(k: try c.int("k"), axis: axis, largest: largest, sorted: sorted),
                        inputs: [c.inputs[0]])
                } else if let k = c.constant(1) {
                    c.emit(
                        TopKLayer(k: try k.scalarInt(), axis: axis, largest: largest, sorted: sorted),
                        inputs: [c.inputs[0]])
                } else {
                    c.emit(TopKLayer(k: nil, axis: axis, largest: largest, sorted: sorted))
                }
            },
        ]

    /// ONNX name, op, and the version from which `axes` is an input instead of an attribute.
    private static let reduceOps: [(String, ReduceLayer.Op, Int)] = [
        ("ReduceSum", .sum, 13), ("ReduceMean", .mean, 18), ("ReduceMax", .max, 18), ("ReduceMin", .min, 18),
        ("ReduceProd", .prod, 18), ("ReduceL1", .l1, 18), ("ReduceL2", .l2, 18), ("ReduceLogSum", .logSum, 18),
        ("ReduceLogSumExp", .logSumExp, 18), ("ReduceSumSquare", .sumSquare, 18),
    ]

    private static func importReduce(_ c: ImportContext, op: ReduceLayer.Op, axesInputVersion: Int) throws {
        let keepDims = try c.int("keepdims", default: 1) != 0
        guard c.inputs.count >= 1, !c.inputs[0].isEmpty else { throw c.invalid("reduction needs a data input") }
        if c.version < axesInputVersion {
            let axes = try c.optionalInts("axes")
            c.emit(ReduceLayer(op: op, axes: axes, keepDims: keepDims), inputs: [c.inputs[0]])
            return
        }
        let noop = try c.int("noop_with_empty_axes", default: 0) != 0
        if !c.hasInput(1) {
            c.emit(ReduceLayer(op: op, axes: nil, keepDims: keepDims, noopWithEmptyAxes: noop), inputs: [c.inputs[0]])
        } else if let axes = c.constant(1) {
            let layer = ReduceLayer(op: op, axes: try axes.intValues(), keepDims: keepDims, noopWithEmptyAxes: noop)
            c.emit(layer, inputs: [c.inputs[0]])
        } else {
            c.emit(ReduceLayer(op: op, axes: nil, keepDims: keepDims, noopWithEmptyAxes: noop))
        }
    }

    private static func cumulative(_ name: String, _ op: CumulativeLayer.Op, since: Int) -> OperatorImporter {
        OperatorImporter(name, since: since) { c in
            let exclusive = try c.int("exclusive", default: 0) != 0
            let reverse = try c.int("reverse", default: 0) != 0
            if let axis = c.constant(1) {
                let layer = CumulativeLayer(op: op, axis: try axis.scalarInt(), exclusive: exclusive, reverse: reverse)
                c.emit(layer, inputs: [c.inputs[0]])
            } else {
                c.emit(CumulativeLayer(op: op, axis: nil, exclusive: exclusive, reverse: reverse))
            }
        }
    }

    private static func argReduce(_ name: String, _ op: ArgReduceLayer.Op) -> OperatorImporter {
        .layer(name, since: 1) { c in
            ArgReduceLayer(
                op: op, axis: try c.int("axis", default: 0), keepDims: try c.int("keepdims", default: 1) != 0,
                selectLastIndex: try c.int("select_last_index", default: 0) != 0)
        }
    }

    private static func softmax(_ name: String, _ variant: SoftmaxLayer.Variant) -> OperatorImporter {
        .layer(name, since: 1) { c in
            if c.version < 13 {
                return SoftmaxLayer(variant: variant, axis: try c.int("axis", default: 1), flattenTail: true)
            }
            return SoftmaxLayer(variant: variant, axis: try c.int("axis", default: -1))
        }
    }
}
