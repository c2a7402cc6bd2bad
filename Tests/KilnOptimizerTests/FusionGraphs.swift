import Foundation
import KilnIR
import KilnOptimizer
import KilnTestSupport

/// Small graphs in the shapes the fusion passes look for, with seeded random weights.
enum FusionGraphs {
    static let noEvaluation = PassContext(evaluate: { _, _ in throw KilnError.unsupported("no evaluation in pass tests")
    })

    static func f32(_ dims: [Int]) -> ValueType { .tensor(TensorType(.float32, dims.map { Dim.value($0) })) }

    /// x [1,3,6,6] -> conv1 (3x3, pad 1, no bias) -> bn1 -> add1(+ skip) -> relu1 -> y, as ResNet's blocks end.
    static func convBatchNormAddRelu(seed: UInt64 = 7) -> Graph {
        var rng = SeededGenerator(seed: seed)
        var g = Graph(
            name: "block",
            inputs: [
                GraphValue(name: "x", type: f32([1, 3, 6, 6])), GraphValue(name: "skip", type: f32([1, 4, 6, 6])),
            ],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: [
                "w": .random([4, 3, 3, 3], using: &rng),
                "gamma": .random([4], in: 0.5...1.5, using: &rng),
                "beta": .random([4], using: &rng),
                "mean": .random([4], using: &rng),
                "var": .random([4], in: 0.2...2, using: &rng),
            ],
            nodes: [
                Node(
                    name: "conv1", layer: ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1])),
                    inputs: ["x", "w"], outputs: ["c"]),
                Node(
                    name: "bn1", layer: NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
                    inputs: ["c", "gamma", "beta", "mean", "var"], outputs: ["n"]),
                Node(name: "add1", layer: BinaryLayer(.add), inputs: ["n", "skip"], outputs: ["a"]),
                Node(name: "relu1", layer: UnaryLayer(.relu), inputs: ["a"], outputs: ["y"]),
            ])
        try? g.inferTypes()
        return g
    }
}

extension FusionGraphs {
    /// x [1,2,5,5] -> conv (1x1, with bias) -> `tail` nodes reading "c" and ending in "y".
    static func convThen(_ tail: [Node], extra: [String: Tensor] = [:], seed: UInt64 = 11) -> Graph {
        var rng = SeededGenerator(seed: seed)
        var initializers: [String: Tensor] = ["w": .random([4, 2, 1, 1], using: &rng)]
        initializers.merge(extra) { a, _ in a }
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: f32([1, 2, 5, 5]))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: initializers,
            nodes: [
                Node(
                    name: "conv", layer: ConvolutionLayer(ConvolutionParameters()), inputs: ["x", "w"], outputs: ["c"])
            ]
                + tail)
        try? g.inferTypes()
        return g
    }

    /// a [3,5] x w [5,4] (matMul) -> `tail` nodes reading "m" and ending in "y".
    static func matMulThen(_ tail: [Node], extra: [String: Tensor] = [:], seed: UInt64 = 13) -> Graph {
        var rng = SeededGenerator(seed: seed)
        var initializers: [String: Tensor] = ["w": .random([5, 4], using: &rng)]
        initializers.merge(extra) { a, _ in a }
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "a", type: f32([3, 5]))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: initializers,
            nodes: [Node(name: "mm", layer: MatMulLayer(), inputs: ["a", "w"], outputs: ["m"])] + tail)
        try? g.inferTypes()
        return g
    }
}

/// What passes report as considered and not made (`kiln inspect --verbose`), as "node: reason" lines.
final class RejectionLog: @unchecked Sendable {
    private let lock = NSLock()
    private var heard: [String] = []

    var lines: [String] { lock.withLock { heard } }

    /// A pass context that records here (and evaluates no constants).
    var context: PassContext {
        PassContext(
            evaluate: { _, _ in throw KilnError.unsupported("no folding") },
            rejected: { node, reason in self.lock.withLock { self.heard.append("\(node): \(reason)") } })
    }
}
