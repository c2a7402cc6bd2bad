import Foundation
import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

/// A batch normalization no producer absorbs becomes a per-channel multiply and add, which pointwise fusion
/// joins with the activation after it.
@Suite struct BatchNormAffineTests {
    let context = FusionGraphs.noEvaluation

    /// x [1,4,6,6] -> global max pool -> bn (constant parameters unless `inputParameters`) -> relu -> y.
    static func poolBatchNormRelu(inputParameters: Bool = false) -> Graph {
        var rng = SeededGenerator(seed: 31)
        let parameters: [String: Tensor] = [
            "gamma": .random([4], in: 0.5...1.5, using: &rng), "beta": .random([4], using: &rng),
            "mean": .random([4], using: &rng), "var": .random([4], in: 0.2...2, using: &rng),
        ]
        let names = ["gamma", "beta", "mean", "var"]
        var g = Graph(
            name: "g",
            inputs: [GraphValue(name: "x", type: FusionGraphs.f32([1, 4, 6, 6]))]
                + (inputParameters ? names.map { GraphValue(name: $0, type: FusionGraphs.f32([4])) } : []),
            outputs: [GraphValue(name: "y", type: nil)], initializers: inputParameters ? [:] : parameters,
            nodes: [
                Node(name: "pool", layer: PoolLayer(op: .max, window: nil), inputs: ["x"], outputs: ["p"]),
                Node(
                    name: "bn", layer: NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
                    inputs: ["p"] + names, outputs: ["n"]),
                Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["n"], outputs: ["y"]),
            ])
        try? g.inferTypes()
        return g
    }

    @Test func rewritesTheNormalizationAsAPerChannelMultiplyAndAdd() throws {
        var g = Self.poolBatchNormRelu()
        #expect(try BatchNormAffine().run(&g, context))
        let text = g.textForm()
        #expect(text.contains("const n.scale: f32[4,1,1]"))
        #expect(text.contains("const n.shift: f32[4,1,1]"))
        #expect(text.contains("n.scaled = pointwise.binary[op=mul](p, n.scale)"))
        #expect(text.contains("n = pointwise.binary[op=add](n.scaled, n.shift)"))
        #expect(!text.contains("normalization"))
        #expect(try !BatchNormAffine().run(&g, context), "nothing left to rewrite")
    }

    @Test func theWholePipelineRunsItInOneLoopWithTheActivation() throws {
        var rng = SeededGenerator(seed: 32)
        let run = try OptimizedVersusPlain(Self.poolBatchNormRelu(), ["x": .random([1, 4, 6, 6], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [PoolLayer.kind, FusedPointwiseLayer.kind])
    }

    /// After a convolution the normalization folds into the weights instead.
    @Test func aNormalizationAConvolutionAbsorbsIsNotRewritten() throws {
        var rng = SeededGenerator(seed: 33)
        let graph = FusionGraphs.convBatchNormAddRelu()
        let run = try OptimizedVersusPlain(
            graph, ["x": .random([1, 3, 6, 6], using: &rng), "skip": .random([1, 4, 6, 6], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [ConvolutionLayer.kind])
    }

    /// pool -> bn -> `tail` (per-channel steps reading "n", ending in "y") -> relu.
    static func poolBatchNormThen(_ tail: [Node], constants: [String: Tensor]) -> Graph {
        var g = poolBatchNormRelu()
        g.nodes[2].inputs = ["tailed"]
        g.nodes.insert(contentsOf: tail, at: 2)
        g.initializers.merge(constants) { a, _ in a }
        try? g.inferTypes()
        return g
    }

    @Test func theMultipliesAndAddsAfterItJoinItsConstants() throws {
        var rng = SeededGenerator(seed: 34)
        let graph = Self.poolBatchNormThen(
            [
                Node(name: "mul", layer: BinaryLayer(.mul), inputs: ["k", "n"], outputs: ["m"]),
                Node(name: "add", layer: BinaryLayer(.add), inputs: ["m", "b"], outputs: ["a"]),
                Node(name: "div", layer: BinaryLayer(.div), inputs: ["a", "d"], outputs: ["q"]),
                Node(name: "sub", layer: BinaryLayer(.sub), inputs: ["q", "e"], outputs: ["tailed"]),
            ],
            constants: [
                "k": .random([4, 1, 1], using: &rng), "b": .random([1, 4, 1, 1], using: &rng),
                "d": .random([1], in: 0.5...2, using: &rng), "e": .random([4, 1, 1], using: &rng),
            ])
        var g = graph
        #expect(try BatchNormAffine().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        let text = g.textForm()
        #expect(text.contains("tailed.scaled = pointwise.binary[op=mul](p, tailed.scale)    # bn :"))
        #expect(
            text.contains(
                "tailed = pointwise.binary[op=add](tailed.scaled, tailed.shift)    # bn.shift + mul + add + div + sub :"
            ))
        #expect(g.nodes.count == 4, "pool, multiply, add, relu")
        let run = try OptimizedVersusPlain(graph, ["x": .random([1, 4, 6, 6], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [PoolLayer.kind, FusedPointwiseLayer.kind])
    }

    @Test func aConstantMinusTheNormalizationOrAStepReadElsewhereStays() throws {
        var rng = SeededGenerator(seed: 35)
        let reversed = Self.poolBatchNormThen(
            [Node(name: "sub", layer: BinaryLayer(.sub), inputs: ["e", "n"], outputs: ["tailed"])],
            constants: ["e": .random([4, 1, 1], using: &rng)])
        var g = reversed
        #expect(try BatchNormAffine().run(&g, context))
        #expect(g.nodes.contains { $0.name == "sub" })
        var shared = Self.poolBatchNormThen(
            [Node(name: "mul", layer: BinaryLayer(.mul), inputs: ["n", "k"], outputs: ["tailed"])],
            constants: ["k": .random([4, 1, 1], using: &rng)])
        shared.outputs.append(GraphValue(name: "n", type: nil))
        #expect(try BatchNormAffine().run(&shared, context))
        #expect(shared.nodes.contains { $0.name == "mul" })
        let spatial = Self.poolBatchNormThen(
            [Node(name: "mul", layer: BinaryLayer(.mul), inputs: ["n", "k"], outputs: ["tailed"])],
            constants: ["k": .random([1, 1, 6], using: &rng)])
        var h = spatial
        _ = try BatchNormAffine().run(&h, context)
        #expect(h.nodes.contains { $0.name == "mul" })
    }

    @Test func parametersThatAreNotConstantsStay() throws {
        var g = Self.poolBatchNormRelu(inputParameters: true)
        #expect(try !BatchNormAffine().run(&g, context))
    }
}
