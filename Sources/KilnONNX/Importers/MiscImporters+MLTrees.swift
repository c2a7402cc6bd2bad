import KilnIR

/// TreeEnsembleRegressor and TreeEnsembleClassifier (v1 and v3): nodes are named by (tree id, node id) and
/// leaves are LEAF nodes whose contributions are listed separately; converted here to the v5 layout.
enum MLLegacyTrees {
    private struct Key: Hashable {
        let tree: Int
        let node: Int
    }

    static let table: [OperatorImporter] = [
        .layer("TreeEnsembleRegressor", domain: MLImporters.domain) { c in try convert(c, classifier: false) },
        .layer("TreeEnsembleClassifier", domain: MLImporters.domain) { c in try convert(c, classifier: true) },
    ]

    private static func doubles(_ c: ImportContext, _ name: String) throws -> [Double] {
        if let t = try c.optionalTensor("\(name)_as_tensor") { return try t.doubleValues() }
        return try c.floats(name, default: []).map(Double.init)
    }

    static func convert(_ c: ImportContext, classifier: Bool) throws -> TreeEnsembleLayer {
        let trees = try c.ints("nodes_treeids")
        let ids = try c.ints("nodes_nodeids")
        let features = try c.ints("nodes_featureids")
        let modes = try c.strings("nodes_modes")
        let splits = try doubles(c, "nodes_values")
        let trueIds = try c.ints("nodes_truenodeids")
        let falseIds = try c.ints("nodes_falsenodeids")
        let missing = try c.ints("nodes_missing_value_tracks_true", default: [])
        let n = trees.count
        guard [ids.count, features.count, modes.count, trueIds.count, falseIds.count].allSatisfy({ $0 == n }),
            splits.count == n || splits.isEmpty, missing.isEmpty || missing.count == n
        else { throw c.invalid("tree ensemble node attributes have different lengths") }
        var position: [Key: Int] = [:]
        var leafOf: [Int: Int] = [:]
        var nodeOf: [Int: Int] = [:]
        for i in 0..<n {
            position[Key(tree: trees[i], node: ids[i])] = i
            if modes[i] == "LEAF" { leafOf[i] = leafOf.count } else { nodeOf[i] = nodeOf.count }
        }
        func reference(_ tree: Int, _ node: Int) throws -> (Int, Bool) {
            guard let p = position[Key(tree: tree, node: node)] else {
                throw c.invalid("tree \(tree) refers to missing node \(node)")
            }
            if let leaf = leafOf[p] { return (leaf, true) }
            return (nodeOf[p] ?? 0, false)
        }
        let comparisons: [String: TreeEnsembleLayer.Comparison] = [
            "BRANCH_LEQ": .leq, "BRANCH_LT": .lt, "BRANCH_GTE": .gte, "BRANCH_GT": .gt, "BRANCH_EQ": .eq,
            "BRANCH_NEQ": .neq,
        ]
        var nodes: [TreeEnsembleLayer.Node] = []
        for i in 0..<n where modes[i] != "LEAF" {
            guard let comparison = comparisons[modes[i]] else {
                throw c.invalid("tree node mode '\(modes[i])' is not defined")
            }
            let (t, tLeaf) = try reference(trees[i], trueIds[i])
            let (f, fLeaf) = try reference(trees[i], falseIds[i])
            nodes.append(
                TreeEnsembleLayer.Node(
                    feature: features[i], comparison: comparison, split: splits.isEmpty ? 0 : splits[i], members: [],
                    trueBranch: t, trueIsLeaf: tLeaf, falseBranch: f, falseIsLeaf: fLeaf,
                    missingTracksTrue: !missing.isEmpty && missing[i] != 0))
        }
        // Each tree's root is its first node that no branch of the same tree points to.
        var children = Set<Key>()
        for i in 0..<n where modes[i] != "LEAF" {
            children.insert(Key(tree: trees[i], node: trueIds[i]))
            children.insert(Key(tree: trees[i], node: falseIds[i]))
        }
        var roots: [TreeEnsembleLayer.Root] = []
        var seen = Set<Int>()
        for i in 0..<n where !seen.contains(trees[i]) && !children.contains(Key(tree: trees[i], node: ids[i])) {
            seen.insert(trees[i])
            let (index, isLeaf) = try reference(trees[i], ids[i])
            roots.append(.init(index: index, isLeaf: isLeaf))
        }
        let prefix = classifier ? "class" : "target"
        let leafTrees = try c.ints("\(prefix)_treeids")
        let leafNodes = try c.ints("\(prefix)_nodeids")
        let leafTargets = try c.ints("\(prefix)_ids")
        let weights = try doubles(c, "\(prefix)_weights")
        guard [leafNodes.count, leafTargets.count, weights.count].allSatisfy({ $0 == leafTrees.count }) else {
            throw c.invalid("tree ensemble \(prefix) attributes have different lengths")
        }
        var leaves = [[TreeEnsembleLayer.LeafWeight]](repeating: [], count: leafOf.count)
        for j in leafTrees.indices {
            let (leaf, isLeaf) = try reference(leafTrees[j], leafNodes[j])
            guard isLeaf else {
                throw c.invalid("tree \(leafTrees[j]) node \(leafNodes[j]) has weights but is not a leaf")
            }
            leaves[leaf].append(.init(target: leafTargets[j], weight: weights[j]))
        }
        let post = try c.string("post_transform", default: "NONE")
        let posts: [String: TreeEnsembleLayer.PostTransform] = [
            "NONE": .none, "SOFTMAX": .softmax, "LOGISTIC": .logistic, "SOFTMAX_ZERO": .softmaxZero, "PROBIT": .probit,
        ]
        guard let postTransform = posts[post] else { throw c.invalid("post_transform '\(post)' is not defined") }
        var labels: TreeEnsembleLayer.ClassLabels? = nil
        var targets: Int
        var aggregate = TreeEnsembleLayer.Aggregate.sum
        if classifier {
            if c.has("classlabels_strings") {
                labels = .strings(try c.strings("classlabels_strings"))
            } else {
                labels = .int64s(try c.ints("classlabels_int64s").map { Int64($0) })
            }
            targets = max(labels?.count ?? 0, (leafTargets.max() ?? 0) + 1)
        } else {
            targets = try c.int("n_targets", default: (leafTargets.max() ?? 0) + 1)
            let text = try c.string("aggregate_function", default: "SUM")
            let aggregates: [String: TreeEnsembleLayer.Aggregate] = [
                "AVERAGE": .average, "SUM": .sum, "MIN": .min, "MAX": .max,
            ]
            guard let parsed = aggregates[text] else { throw c.invalid("aggregate_function '\(text)' is not defined") }
            aggregate = parsed
        }
        guard targets > 0 else { throw c.invalid("tree ensemble has no targets") }
        return TreeEnsembleLayer(
            nodes: nodes, leaves: leaves, roots: roots, targets: targets, aggregate: aggregate,
            postTransform: postTransform, baseValues: try doubles(c, "base_values"), classLabels: labels,
            outputType: .float32)
    }
}
