import KilnIR

/// BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization, RMSNormalization,
/// MeanVarianceNormalization, LpNormalization and LRN onto the normalization layer.
enum NormalizationImporters {
    static let table: [OperatorImporter] = [
        OperatorImporter("BatchNormalization", since: 1) { c in
            if c.version < 9, try c.int("spatial", default: 1) == 0 {
                throw c.unsupported("BatchNormalization with spatial=0 (per-activation statistics)")
            }
            let outputs = c.outputs.enumerated().filter { !$0.element.isEmpty }.map(\.offset)
            let training: Bool
            if c.version >= 14 {
                training = try c.int("training_mode", default: 0) != 0
            } else if c.version < 7 {
                training = try c.int("is_test", default: 0) == 0 && outputs.count > 1
            } else {
                training = outputs.count > 1
            }
            guard c.inputs.count == 5 else { throw c.invalid("BatchNormalization needs 5 inputs") }
            if !training, outputs.contains(where: { $0 > 0 }) {
                throw c.unsupported("BatchNormalization statistics outputs outside training mode")
            }
            if outputs.contains(where: { $0 > 2 }) {
                throw c.unsupported("BatchNormalization saved mean and variance outputs (training before opset 14)")
            }
            let momentum = try c.float("momentum", default: 0.9)
            let layer = NormalizationLayer(
                method: .batch(training: training, momentum: momentum), epsilon: try c.float("epsilon", default: 1e-5))
            c.emit(layer, outputs: Array(c.outputs.prefix(training ? 3 : 1)))
        },
        .layer("InstanceNormalization", since: 1) { c in
            NormalizationLayer(method: .instance, epsilon: try c.float("epsilon", default: 1e-5))
        },
        .layer("LayerNormalization", since: 17) { c in
            NormalizationLayer(
                method: .layer(axis: try c.int("axis", default: -1)), epsilon: try c.float("epsilon", default: 1e-5),
                statisticsType: try stashType(c))
        },
        .layer("GroupNormalization", since: 18) { c in
            let groups = try c.int("num_groups")
            guard groups > 0 else { throw c.invalid("num_groups must be positive, is \(groups)") }
            return NormalizationLayer(
                method: .group(groups: groups, perGroupAffine: c.version < 21),
                epsilon: try c.float("epsilon", default: 1e-5))
        },
        .layer("RMSNormalization", since: 23) { c in
            NormalizationLayer(
                method: .rms(axis: try c.int("axis", default: -1)), epsilon: try c.float("epsilon", default: 1e-5),
                statisticsType: try stashType(c))
        },
        .layer("MeanVarianceNormalization", since: 9) { c in
            NormalizationLayer(method: .meanVariance(axes: try c.ints("axes", default: [0, 2, 3])), epsilon: 1e-9)
        },
        .layer("LpNormalization", since: 1) { c in
            let p = try c.int("p", default: 2)
            guard p == 1 || p == 2 else { throw c.invalid("LpNormalization p must be 1 or 2, is \(p)") }
            return NormalizationLayer(method: .lp(axis: try c.int("axis", default: -1), p: p))
        },
        .layer("LRN", since: 1) { c in
            let size = try c.int("size")
            guard size > 0 else { throw c.invalid("LRN size must be positive, is \(size)") }
            return NormalizationLayer(
                method: .lrn(
                    size: size, alpha: try c.float("alpha", default: 1e-4), beta: try c.float("beta", default: 0.75),
                    bias: try c.float("bias", default: 1)))
        },
    ]

    private static func stashType(_ c: ImportContext) throws -> DType {
        let raw = try c.int("stash_type", default: 1)
        guard let type = DType(rawValue: raw), type.isFloatingPoint else {
            throw c.invalid("stash_type \(raw) is not a floating-point type")
        }
        return type
    }
}
