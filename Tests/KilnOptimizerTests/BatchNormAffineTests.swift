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

    @Test func parametersThatAreNotConstantsStay() throws {
        var g = Self.poolBatchNormRelu(inputParameters: true)
        #expect(try !BatchNormAffine().run(&g, context))
    }
}
