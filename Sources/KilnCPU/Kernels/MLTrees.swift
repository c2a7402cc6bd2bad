import Foundation
import KilnIR

/// Tree ensemble evaluation in Double: walk each tree per row, aggregate leaf weights per target, add the base
/// values, then apply the post-transform (and for classifiers pick the label).
enum MLTrees {
    static func run(_ layer: TreeEnsembleLayer, _ x: Tensor) throws -> [Value] {
        guard x.rank == 2 || x.rank == 1 else {
            throw KilnError.shapeMismatch("tree ensemble input must be [N, F], is \(x.shape)")
        }
        let rows = x.rank == 2 ? x.shape[0] : 1
        let features = x.shape[x.rank - 1]
        let values = try MiscSupport.doubles(x)
        let targets = layer.targets
        guard layer.baseValues.isEmpty || layer.baseValues.count == targets else {
            throw KilnError.invalidModel(
                "tree ensemble has \(layer.baseValues.count) base values for \(targets) targets")
        }
        var out = [Double](repeating: 0, count: rows * targets)
        let start: Double
        switch layer.aggregate {
        case .min: start = .greatestFiniteMagnitude
        case .max: start = -.greatestFiniteMagnitude
        default: start = 0
        }
        for r in 0..<rows {
            let row = values[(r * features)..<((r + 1) * features)]
            for t in 0..<targets { out[r * targets + t] = start }
            for root in layer.roots {
                let leaf = try walk(layer, root, row, features: features)
                guard leaf >= 0, leaf < layer.leaves.count else {
                    throw KilnError.invalidModel("tree ensemble leaf \(leaf) does not exist")
                }
                for contribution in layer.leaves[leaf] {
                    let t = contribution.target
                    guard t >= 0, t < targets else {
                        throw KilnError.invalidModel("tree ensemble target \(t) out of range")
                    }
                    let p = r * targets + t
                    switch layer.aggregate {
                    case .sum: out[p] += contribution.weight
                    case .average: out[p] += contribution.weight / Double(layer.roots.count)
                    case .min: out[p] = min(out[p], contribution.weight)
                    case .max: out[p] = max(out[p], contribution.weight)
                    }
                }
            }
            if !layer.baseValues.isEmpty {
                for t in 0..<targets { out[r * targets + t] += layer.baseValues[t] }
            }
        }
        let scoreType = layer.outputType ?? (x.dtype.isFloatingPoint ? x.dtype : .float32)
        guard let labels = layer.classLabels else {
            for r in 0..<rows { transform(&out, row: r, width: targets, layer.postTransform) }
            return [.tensor(try MiscSupport.tensor(scoreType, shape: [rows, targets], out))]
        }
        return try classify(layer, labels, scores: out, rows: rows, scoreType: scoreType)
    }

    /// Classifier outputs. With a single scored class (binary models) the other class's score is derived
    /// from it: 1 - p for probabilities, -s for margins, as ONNX's reference and ONNX Runtime do.
    static func classify(
        _ layer: TreeEnsembleLayer, _ labels: TreeEnsembleLayer.ClassLabels, scores raw: [Double], rows: Int,
        scoreType: DType
    ) throws -> [Value] {
        let targets = layer.targets
        let usedClasses = Set(layer.leaves.flatMap { $0.map(\.target) })
        let binary = usedClasses.count == 1 && labels.count <= 2
        let scored = usedClasses.first ?? 0
        let width = binary ? 2 : targets
        var scores = [Double](repeating: 0, count: rows * width)
        for r in 0..<rows {
            if binary {
                let p = raw[r * targets + min(scored, targets - 1)]
                scores[r * 2 + 1] = p
                scores[r * 2] = layer.postTransform == .none || layer.postTransform == .probit ? 1 - p : -p
            } else {
                for t in 0..<targets { scores[r * width + t] = raw[r * targets + t] }
            }
            transform(&scores, row: r, width: width, layer.postTransform)
        }
        var best = [Int](repeating: 0, count: rows)
        for r in 0..<rows {
            for t in 1..<max(width, 1) where scores[r * width + t] > scores[r * width + best[r]] { best[r] = t }
        }
        let labelTensor: Tensor
        switch labels {
        case .int64s(let v):
            let picked = try best.map { i -> Int64 in
                if v.count == 1 { return i == 1 ? v[0] : 0 }
                guard i < v.count else { throw KilnError.invalidModel("classifier has fewer labels than classes") }
                return v[i]
            }
            labelTensor = Tensor(shape: [rows], scalars: picked)
        case .strings(let v):
            let picked = try best.map { i -> String in
                guard i < v.count else { throw KilnError.invalidModel("classifier has fewer labels than classes") }
                return v[i]
            }
            labelTensor = Tensor(shape: [rows], strings: picked)
        }
        // A model with one label still reports two score columns in the binary form.
        let scoreWidth = binary && labels.count == 1 ? 2 : width
        return [.tensor(labelTensor), .tensor(try MiscSupport.tensor(scoreType, shape: [rows, scoreWidth], scores))]
    }

    /// The leaf index a row reaches from `root`. Bounded by the node count so a cyclic model cannot hang.
    static func walk(
        _ layer: TreeEnsembleLayer, _ root: TreeEnsembleLayer.Root, _ row: ArraySlice<Double>, features: Int
    ) throws -> Int {
        var (index, isLeaf) = (root.index, root.isLeaf)
        var steps = 0
        while !isLeaf {
            guard index >= 0, index < layer.nodes.count, steps <= layer.nodes.count else {
                throw KilnError.invalidModel("tree ensemble node \(index) does not exist or the tree has a cycle")
            }
            steps += 1
            let node = layer.nodes[index]
            guard node.feature >= 0, node.feature < features else {
                throw KilnError.invalidArgument("tree ensemble feature \(node.feature) exceeds the \(features) inputs")
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

    static func transform(_ out: inout [Double], row: Int, width: Int, _ post: TreeEnsembleLayer.PostTransform) {
        let range = (row * width)..<((row + 1) * width)
        switch post {
        case .none: return
        case .logistic:
            for i in range { out[i] = 1 / (1 + exp(-out[i])) }
        case .softmax:
            let top = out[range].max() ?? 0
            var sum = 0.0
            for i in range {
                out[i] = exp(out[i] - top)
                sum += out[i]
            }
            for i in range { out[i] /= sum }
        case .softmaxZero:
            // Exact zeros stay zero; the rest are normalised among themselves.
            let top = range.filter { out[$0] != 0 }.map { out[$0] }.max() ?? 0
            var sum = 0.0
            for i in range where out[i] != 0 {
                out[i] = exp(out[i] - top)
                sum += out[i]
            }
            if sum > 0 { for i in range where out[i] != 0 { out[i] /= sum } }
        case .probit:
            for i in range { out[i] = 1.41421356 * inverseErf(2 * out[i] - 1) }
        }
    }

    /// Winitzki's closed-form inverse error function (a = 0.147), the approximation ONNX Runtime and the ONNX
    /// reference use, so PROBIT scores agree with them rather than with an exact inverse.
    static func inverseErf(_ y: Double) -> Double {
        let sign: Double = y < 0 ? -1 : 1
        let w = (1 - y) * (1 + y)
        guard w > 0 else { return 0 }
        let l = log(w)
        let v = 2 / (Double.pi * 0.147) + 0.5 * l
        return sign * (-v + (v * v - l / 0.147).squareRoot()).squareRoot()
    }
}
