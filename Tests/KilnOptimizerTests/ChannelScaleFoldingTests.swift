import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

/// A per-channel multiply (or divide) after a convolution or constant-weight product folds into its weights
/// (`scale-folding`), and a per-channel add after it into the bias the layer already has (`epilogue-fusion`):
/// the batch normalization that exporters such as Caffe2's write as a multiply and an add.
@Suite struct ChannelScaleFoldingTests {
    let context = FusionGraphs.noEvaluation

    /// x [1,2,5,5] -> conv (bias) -> mul by `scale` -> add `shift` [4,1,1] -> relu -> y.
    static func convScaleShiftRelu(scale: [Int] = [4, 1, 1], seed: UInt64 = 41) -> Graph {
        var rng = SeededGenerator(seed: seed)
        var g = FusionGraphs.convThen(
            [
                Node(name: "mul", layer: BinaryLayer(.mul), inputs: ["s", "c"], outputs: ["m"]),
                Node(name: "add", layer: BinaryLayer(.add), inputs: ["m", "t"], outputs: ["a"]),
                Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["a"], outputs: ["y"]),
            ],
            extra: [
                "s": .random(scale, in: 0.5...2, using: &rng), "t": .random([4, 1, 1], using: &rng),
                "b": .random([4], using: &rng),
            ])
        g.nodes[0].inputs.append("b")
        try? g.inferTypes()
        return g
    }

    @Test func aChannelMultiplyScalesTheWeightsAndBias() throws {
        var g = Self.convScaleShiftRelu()
        #expect(try ScaleFolding().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        let expected = """
            graph g(x: f32[1,2,5,5]) -> (y: f32[1,4,5,5])
              const m.bias: f32[4]
              const m.weight: f32[4,2,1,1]
              const t: f32[4,1,1]
              m = convolution(x, m.weight, m.bias)    # conv + mul : f32[1,4,5,5]
              a = pointwise.binary[op=add](m, t)    # add : f32[1,4,5,5]
              y = pointwise.unary[op=relu](a)    # relu : f32[1,4,5,5]
            """
        #expect(g.textForm() == expected)
        let (w, s, b) = (
            try Self.values(FusionGraphs.convThen([]).initializers["w"]),
            try Self.values(Self.convScaleShiftRelu().initializers["s"]),
            try Self.values(Self.convScaleShiftRelu().initializers["b"])
        )
        let scaledWeights = w.indices.map { Float(Double(w[$0]) * Double(s[$0 / 2])) }
        #expect(try Self.values(g.initializers["m.weight"]) == scaledWeights)
        #expect(try Self.values(g.initializers["m.bias"]) == b.indices.map { Float(Double(b[$0]) * Double(s[$0])) })
    }

    @Test func theAddThenJoinsTheBiasAndTheActivationTheEpilogue() throws {
        var g = Self.convScaleShiftRelu()
        _ = try ScaleFolding().run(&g, context)
        #expect(try EpilogueFusion().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        let expected = """
            graph g(x: f32[1,2,5,5]) -> (y: f32[1,4,5,5])
              const m.weight: f32[4,2,1,1]
              const t.bias: f32[4]
              y = convolution[epilogue=relu](x, m.weight, t.bias)    # conv + mul + add + relu : f32[1,4,5,5]
            """
        #expect(g.textForm() == expected)
    }

    @Test func theWholePipelineGivesTheSameOutputs() throws {
        for scale in [[4, 1, 1], [1, 4, 1, 1], [1]] {
            var rng = SeededGenerator(seed: 42)
            let run = try OptimizedVersusPlain(
                Self.convScaleShiftRelu(scale: scale), ["x": .random([1, 2, 5, 5], using: &rng)])
            run.expectSameOutputs()
            #expect(run.optimized.nodes.map(\.kind) == [ConvolutionLayer.kind], "scale \(scale)")
        }
    }

    @Test func aDivisionAfterAProductScalesItsColumns() throws {
        var rng = SeededGenerator(seed: 43)
        let graph = FusionGraphs.matMulThen(
            [Node(name: "div", layer: BinaryLayer(.div), inputs: ["m", "d"], outputs: ["y"])],
            extra: ["d": .random([1, 4], in: 0.5...2, using: &rng)])
        var g = graph
        #expect(try ScaleFolding().run(&g, context))
        #expect(g.nodes.map(\.kind) == [MatMulLayer.kind])
        let run = try OptimizedVersusPlain(graph, ["a": .random([3, 5], using: &rng)])
        run.expectSameOutputs()
    }

    @Test func whatIsNotAPerChannelScaleOfALayerOutputStays() throws {
        // Varies along a spatial axis.
        var spatial = Self.convScaleShiftRelu(scale: [1, 1, 5, 1])
        #expect(try !ScaleFolding().run(&spatial, context))
        // The constant divided by the output is no scale.
        var rng = SeededGenerator(seed: 44)
        var inverse = FusionGraphs.convThen(
            [Node(name: "div", layer: BinaryLayer(.div), inputs: ["d", "c"], outputs: ["y"])],
            extra: ["d": .random([4, 1, 1], in: 0.5...2, using: &rng)])
        #expect(try !ScaleFolding().run(&inverse, context))
        // The convolution's output is read elsewhere too: `kiln inspect --verbose` says so.
        var shared = Self.convScaleShiftRelu()
        shared.outputs.append(GraphValue(name: "c", type: nil))
        let log = RejectionLog()
        #expect(try !ScaleFolding().run(&shared, log.context))
        #expect(log.lines == ["conv: mul (per-channel scale) not folded into the weights: 'c' is read elsewhere too"])
        // Its weights are an input.
        var input = Self.convScaleShiftRelu()
        input.initializers["w"] = nil
        input.inputs.append(GraphValue(name: "w", type: FusionGraphs.f32([4, 2, 1, 1])))
        let inputLog = RejectionLog()
        #expect(try !ScaleFolding().run(&input, inputLog.context))
        #expect(inputLog.lines.count == 1)
        // A zero divisor.
        var zero = FusionGraphs.convThen(
            [Node(name: "div", layer: BinaryLayer(.div), inputs: ["c", "d"], outputs: ["y"])],
            extra: ["d": Tensor(shape: [4, 1, 1], scalars: [1, 2, 0, 4] as [Float])])
        #expect(try !ScaleFolding().run(&zero, context))
    }

    private static func values(_ tensor: Tensor?) throws -> [Float] {
        try #require(tensor).scalars(as: Float.self)
    }
}
