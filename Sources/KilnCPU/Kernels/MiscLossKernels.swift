import Foundation
import KilnIR

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, computed in Double.
enum MiscLoss {
    static func run(_ layer: ClassificationLossLayer, _ inputs: [Value?]) throws -> [Value] {
        let scoresTensor = try inputs.tensor(0)
        let labelsTensor = try inputs.tensor(1)
        let weightsTensor = try inputs.optionalTensor(2)
        guard scoresTensor.rank >= 2 else {
            throw KilnError.shapeMismatch("loss scores must be [N, C, ...], are \(scoresTensor.shape)")
        }
        let n = scoresTensor.shape[0]
        let classes = scoresTensor.shape[1]
        let spatialShape = Array(scoresTensor.shape.dropFirst(2))
        let spatial = spatialShape.reduce(1, *)
        guard labelsTensor.shape == [n] + spatialShape else {
            throw KilnError.shapeMismatch(
                "loss labels have shape \(labelsTensor.shape), expected \([n] + spatialShape)")
        }
        guard labelsTensor.dtype.isInteger else { throw KilnError.typeMismatch("loss labels must be integers") }
        var scores = try MiscSupport.doubles(scoresTensor)
        let labels = try labelsTensor.int64Values()
        let weights = try weightsTensor.map(MiscSupport.doubles)
        if let weights, weights.count != classes {
            throw KilnError.shapeMismatch("loss weights have \(weights.count) values for \(classes) classes")
        }
        if layer.softmax {
            // log_softmax over the class axis, stabilised by the per-position maximum.
            for b in 0..<n {
                for s in 0..<spatial {
                    let base = b * classes * spatial + s
                    var top = -Double.infinity
                    for c in 0..<classes { top = max(top, scores[base + c * spatial]) }
                    var sum = 0.0
                    for c in 0..<classes { sum += exp(scores[base + c * spatial] - top) }
                    let logSum = log(sum) + top
                    for c in 0..<classes { scores[base + c * spatial] -= logSum }
                }
            }
        }
        var losses = [Double](repeating: 0, count: n * spatial)
        var weightSum = 0.0
        for b in 0..<n {
            for s in 0..<spatial {
                let label = labels[b * spatial + s]
                if let ignore = layer.ignoreIndex, label == ignore { continue }
                guard label >= 0, label < Int64(classes) else {
                    throw KilnError.invalidArgument("label \(label) is outside 0..<\(classes)")
                }
                let c = Int(label)
                let w = weights?[c] ?? 1
                losses[b * spatial + s] = -scores[(b * classes + c) * spatial + s] * w
                weightSum += w
            }
        }
        let loss: Tensor
        switch layer.reduction {
        case .none: loss = try MiscSupport.tensor(scoresTensor.dtype, shape: labelsTensor.shape, losses)
        case .sum: loss = try MiscSupport.tensor(scoresTensor.dtype, shape: [], [losses.reduce(0, +)])
        case .mean:
            let total = losses.reduce(0, +)
            loss = try MiscSupport.tensor(scoresTensor.dtype, shape: [], [weightSum == 0 ? 0 : total / weightSum])
        }
        var outputs: [Value] = [.tensor(loss)]
        if layer.softmax {
            outputs.append(.tensor(try MiscSupport.tensor(scoresTensor.dtype, shape: scoresTensor.shape, scores)))
        }
        return outputs
    }
}
