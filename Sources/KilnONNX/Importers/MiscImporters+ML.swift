import KilnIR

/// The ai.onnx.ml operators the engine implements: LabelEncoder, ArrayFeatureExtractor, Binarizer and
/// TreeEnsemble (v5).
enum MLImporters {
    static let domain = "ai.onnx.ml"

    static let table: [OperatorImporter] =
        [
            .layer("LabelEncoder", domain: domain) { c in try labelEncoder(c) },
            .layer("ArrayFeatureExtractor", domain: domain) { _ in ArrayFeatureExtractorLayer() },
            .layer("Binarizer", domain: domain) { c in BinarizerLayer(threshold: try c.float("threshold", default: 0))
            },
            .layer("TreeEnsemble", domain: domain, since: 5) { c in try treeEnsemble(c) },
        ] + MLLegacyTrees.table + MLLinearImporters.table + MLLinearImporters.more

    private static func labelEncoder(_ c: ImportContext) throws -> LabelEncoderLayer {
        if c.version < 2 {
            // Version 1 maps strings to their index in classes_strings, or indices back to strings, depending
            // on the input type.
            let classes = try c.strings("classes_strings")
            let indices = Tensor(shape: [classes.count], scalars: (0..<classes.count).map { Int64($0) })
            let names = Tensor(shape: [classes.count], strings: classes)
            if c.inputType(0)?.tensorType?.dtype == .string {
                return LabelEncoderLayer(
                    keys: names, values: indices,
                    defaultValue: Tensor(scalar: Int64(try c.int("default_int64", default: -1))))
            }
            return LabelEncoderLayer(
                keys: indices, values: names,
                defaultValue: Tensor(shape: [], strings: [try c.string("default_string", default: "_Unused")]))
        }
        let keys: Tensor
        if let t = try c.optionalTensor("keys_tensor") {
            keys = t
        } else if c.has("keys_strings") {
            let k = try c.strings("keys_strings")
            keys = Tensor(shape: [k.count], strings: k)
        } else if c.has("keys_int64s") {
            let k = try c.ints("keys_int64s").map { Int64($0) }
            keys = Tensor(shape: [k.count], scalars: k)
        } else if c.has("keys_floats") {
            let k = try c.floats("keys_floats")
            keys = Tensor(shape: [k.count], scalars: k)
        } else {
            throw c.invalid("LabelEncoder needs keys (keys_strings, keys_int64s, keys_floats or keys_tensor)")
        }
        let values: Tensor
        if let t = try c.optionalTensor("values_tensor") {
            values = t
        } else if c.has("values_strings") {
            let v = try c.strings("values_strings")
            values = Tensor(shape: [v.count], strings: v)
        } else if c.has("values_int64s") {
            let v = try c.ints("values_int64s").map { Int64($0) }
            values = Tensor(shape: [v.count], scalars: v)
        } else if c.has("values_floats") {
            let v = try c.floats("values_floats")
            values = Tensor(shape: [v.count], scalars: v)
        } else {
            throw c.invalid("LabelEncoder needs values (values_strings, values_int64s, values_floats or values_tensor)")
        }
        let fallback: Tensor
        if let t = try c.optionalTensor("default_tensor") {
            fallback = try t.reshaped([])
        } else if values.dtype == .string {
            fallback = Tensor(shape: [], strings: [try c.string("default_string", default: "_Unused")])
        } else if values.dtype == .float32 && c.has("default_float") || values.dtype == .float32 {
            fallback = Tensor(scalar: try c.float("default_float", default: -0.0))
        } else if values.dtype == .int64 {
            fallback = Tensor(scalar: Int64(try c.int("default_int64", default: -1)))
        } else {
            // A values_tensor of another type without default_tensor: the type's -1 (0 for unsigned), as for int64.
            let minusOne = Tensor(scalar: Int64(values.dtype.isSignedInteger || values.dtype.isFloatingPoint ? -1 : 0))
            fallback = try castScalar(minusOne, to: values.dtype)
        }
        guard fallback.dtype == values.dtype else {
            throw c.invalid("LabelEncoder default is \(fallback.dtype.onnxName), values are \(values.dtype.onnxName)")
        }
        return LabelEncoderLayer(keys: keys, values: values, defaultValue: fallback)
    }

    private static func castScalar(_ t: Tensor, to dtype: DType) throws -> Tensor {
        struct Cast: ScalarVisitor {
            let value: Int64
            func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor { Tensor(scalar: T(castingFrom: value)) }
        }
        return try dtype.visit(Cast(value: try t.int64Values()[0]))
    }

    private static func treeEnsemble(_ c: ImportContext) throws -> TreeEnsembleLayer {
        let features = try c.ints("nodes_featureids")
        let modes = try c.tensor("nodes_modes").intValues()
        let splits = try c.tensor("nodes_splits").doubleValues()
        let trueIds = try c.ints("nodes_truenodeids")
        let falseIds = try c.ints("nodes_falsenodeids")
        let trueLeafs = try c.ints("nodes_trueleafs")
        let falseLeafs = try c.ints("nodes_falseleafs")
        let missing = try c.ints("nodes_missing_value_tracks_true", default: [])
        let count = features.count
        guard
            [modes.count, splits.count, trueIds.count, falseIds.count, trueLeafs.count, falseLeafs.count]
                .allSatisfy({ $0 == count }), missing.isEmpty || missing.count == count
        else {
            throw c.invalid("TreeEnsemble node attributes have different lengths")
        }
        // Members of each set-membership node, in node order, separated by NaN.
        var memberGroups: [Set<Double>] = [[]]
        if let m = try c.optionalTensor("membership_values") {
            for v in try m.doubleValues() {
                if v.isNaN { memberGroups.append([]) } else { memberGroups[memberGroups.count - 1].insert(v) }
            }
        }
        var nextGroup = 0
        var nodes: [TreeEnsembleLayer.Node] = []
        for i in 0..<count {
            guard let comparison = TreeEnsembleLayer.Comparison(rawValue: modes[i]) else {
                throw c.invalid("TreeEnsemble node mode \(modes[i]) is not defined")
            }
            var members: Set<Double> = []
            if comparison == .member {
                guard nextGroup < memberGroups.count else {
                    throw c.invalid("TreeEnsemble has too few membership sets")
                }
                members = memberGroups[nextGroup]
                nextGroup += 1
            }
            nodes.append(
                TreeEnsembleLayer.Node(
                    feature: features[i], comparison: comparison, split: splits[i], members: members,
                    trueBranch: trueIds[i], trueIsLeaf: trueLeafs[i] != 0, falseBranch: falseIds[i],
                    falseIsLeaf: falseLeafs[i] != 0, missingTracksTrue: !missing.isEmpty && missing[i] != 0))
        }
        let roots = try c.ints("tree_roots").map { r -> TreeEnsembleLayer.Root in
            guard r >= 0, r < count else { throw c.invalid("TreeEnsemble root \(r) is not a node") }
            // A tree that is a single leaf is written as a root whose two branches are the same leaf.
            let single = trueLeafs[r] != 0 && falseLeafs[r] != 0 && trueIds[r] == falseIds[r]
            return single ? .init(index: trueIds[r], isLeaf: true) : .init(index: r, isLeaf: false)
        }
        guard let aggregate = TreeEnsembleLayer.Aggregate(rawValue: try c.int("aggregate_function", default: 1)),
            let post = TreeEnsembleLayer.PostTransform(rawValue: try c.int("post_transform", default: 0))
        else {
            throw c.invalid("TreeEnsemble aggregate_function or post_transform is not defined")
        }
        let targets = try c.int("n_targets")
        guard targets > 0 else { throw c.invalid("TreeEnsemble n_targets must be positive") }
        let leafTargets = try c.ints("leaf_targetids")
        let leafWeights = try c.tensor("leaf_weights").doubleValues()
        guard leafTargets.count == leafWeights.count else {
            throw c.invalid("TreeEnsemble leaf attributes differ in length")
        }
        let leaves = zip(leafTargets, leafWeights).map { [TreeEnsembleLayer.LeafWeight(target: $0, weight: $1)] }
        return TreeEnsembleLayer(
            nodes: nodes, leaves: leaves, roots: roots, targets: targets, aggregate: aggregate, postTransform: post)
    }
}
