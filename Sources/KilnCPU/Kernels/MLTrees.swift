import Foundation
import KilnIR

/// TreeEnsemble evaluation in Double: walk each tree per row, aggregate leaf weights per target, then apply
/// the post-transform.
enum MLTrees {
    static func run(_ layer: TreeEnsembleLayer, _ x: Tensor) throws -> Tensor {
        guard x.rank == 2 || x.rank == 1 else {
            throw KilnError.shapeMismatch("TreeEnsemble input must be [N, F], is \(x.shape)")
        }
        let rows = x.rank == 2 ? x.shape[0] : 1
        let features = x.shape[x.rank - 1]
        let values = try MiscSupport.doubles(x)
        let targets = layer.targets
        var out = [Double](repeating: 0, count: rows * targets)
        let start: Double
        switch layer.aggregate {
        case .min: start = .greatestFiniteMagnitude
        case .max: start = -.greatestFiniteMagnitude
        default: start = 0
        }
        for i in out.indices { out[i] = start }
        for r in 0..<rows {
            let row = values[(r * features)..<((r + 1) * features)]
            for root in layer.roots {
                let leaf = try walk(layer, root, row, features: features)
                guard leaf >= 0, leaf < layer.leafWeights.count, leaf < layer.leafTargets.count else {
                    throw KilnError.invalidModel("TreeEnsemble leaf \(leaf) does not exist")
                }
                let t = layer.leafTargets[leaf]
                guard t >= 0, t < targets else { throw KilnError.invalidModel("TreeEnsemble target \(t) out of range") }
                let w = layer.leafWeights[leaf]
                let p = r * targets + t
                switch layer.aggregate {
                case .sum: out[p] += w
                case .average: out[p] += w / Double(layer.roots.count)
                case .min: out[p] = min(out[p], w)
                case .max: out[p] = max(out[p], w)
                }
            }
            transform(&out, row: r, targets: targets, layer.postTransform)
        }
        let shape = [rows, targets]
        return try MiscSupport.tensor(x.dtype.isFloatingPoint ? x.dtype : .float32, shape: shape, out)
    }

    /// The leaf index a row reaches from `root`. Bounded by the node count so a cyclic model cannot hang.
    static func walk(
        _ layer: TreeEnsembleLayer, _ root: (index: Int, isLeaf: Bool), _ row: ArraySlice<Double>, features: Int
    ) throws -> Int {
        var (index, isLeaf) = root
        var steps = 0
        while !isLeaf {
            guard index >= 0, index < layer.nodes.count, steps <= layer.nodes.count else {
                throw KilnError.invalidModel("TreeEnsemble node \(index) does not exist or the tree has a cycle")
            }
            steps += 1
            let node = layer.nodes[index]
            guard node.feature >= 0, node.feature < features else {
                throw KilnError.invalidArgument("TreeEnsemble feature \(node.feature) exceeds the \(features) inputs")
            }
            let v = row[row.startIndex + node.feature]
            let goesTrue: Bool
            if v.isNaN && node.missingTracksTrue {
                goesTrue = true
            } else {
                switch node.comparison {
                case .leq: goesTrue = v <= node.split
                case .lt: goesTrue = v < node.split
                case .gte: goesTrue = v >= node.split
                case .gt: goesTrue = v > node.split
                case .eq: goesTrue = v == node.split
                case .neq: goesTrue = v != node.split
                case .member: goesTrue = node.members.contains(v)
                }
            }
            (index, isLeaf) = goesTrue ? (node.trueBranch, node.trueIsLeaf) : (node.falseBranch, node.falseIsLeaf)
        }
        return index
    }

    static func transform(_ out: inout [Double], row: Int, targets: Int, _ post: TreeEnsembleLayer.PostTransform) {
        let range = (row * targets)..<((row + 1) * targets)
        switch post {
        case .none: return
        case .logistic:
            for i in range { out[i] = 1 / (1 + exp(-out[i])) }
        case .softmax, .softmaxZero:
            // SOFTMAX_ZERO leaves exact zeros at zero and normalises the rest.
            let top = out[range].max() ?? 0
            var sum = 0.0
            for i in range where !(post == .softmaxZero && out[i] == 0) {
                out[i] = exp(out[i] - top)
                sum += out[i]
            }
            if sum > 0 { for i in range where !(post == .softmaxZero && out[i] == 0) { out[i] /= sum } }
        case .probit:
            for i in range { out[i] = 2.0.squareRoot() * inverseErf(2 * out[i] - 1) }
        }
    }

    /// Inverse error function by Newton refinement of a rational first guess.
    static func inverseErf(_ y: Double) -> Double {
        guard y > -1, y < 1 else { return y <= -1 ? -.infinity : .infinity }
        let a = 0.147
        let l = log(1 - y * y)
        let t = 2 / (Double.pi * a) + l / 2
        var x = (y < 0 ? -1.0 : 1.0) * ((t * t - l / a).squareRoot() - t).squareRoot()
        for _ in 0..<3 { x -= (erf(x) - y) / (2 / Double.pi.squareRoot() * exp(-x * x)) }
        return x
    }
}
