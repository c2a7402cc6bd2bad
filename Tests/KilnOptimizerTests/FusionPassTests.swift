import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

@Suite struct BatchNormFoldingTests {
    let context = FusionGraphs.noEvaluation

    @Test func foldsIntoConvolutionAndCreatesBias() throws {
        var g = FusionGraphs.convBatchNormAddRelu()
        #expect(try BatchNormFolding().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        let expected = """
            graph block(x: f32[1,3,6,6], skip: f32[1,4,6,6]) -> (y: f32[1,4,6,6])
              const n.bias: f32[4]
              const n.weight: f32[4,3,3,3]
              n = convolution[pads=[1, 1, 1, 1]](x, n.weight, n.bias)    # conv1 + bn1 : f32[1,4,6,6]
              a = pointwise.binary[op=add](n, skip)    # add1 : f32[1,4,6,6]
              y = pointwise.unary[op=relu](a)    # relu1 : f32[1,4,6,6]
            """
        #expect(g.textForm() == expected)
    }

    @Test func keepsNormalizationWhenConvolutionOutputIsReadElsewhere() throws {
        var g = FusionGraphs.convBatchNormAddRelu()
        g.outputs.append(GraphValue(name: "c", type: nil))
        let before = g.textForm()
        #expect(try !BatchNormFolding().run(&g, context))
        #expect(g.textForm() == before)
    }

    @Test func foldsIntoMatMulColumns() throws {
        var rng = SeededGenerator(seed: 3)
        let stats: [String: Tensor] = [
            "gamma": .random([4], in: 0.5...1.5, using: &rng), "beta": .random([4], using: &rng),
            "mean": .random([4], using: &rng), "var": .random([4], in: 0.2...2, using: &rng),
        ]
        var g = FusionGraphs.matMulThen(
            [
                Node(
                    name: "bn", layer: NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
                    inputs: ["m", "gamma", "beta", "mean", "var"], outputs: ["y"])
            ], extra: stats)
        #expect(try BatchNormFolding().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        let expected = """
            graph g(a: f32[3,5]) -> (y: f32[3,4])
              const y.bias: f32[4]
              const y.weight: f32[5,4]
              y = matMul(a, y.weight, y.bias)    # mm + bn : f32[3,4]
            """
        #expect(g.textForm() == expected)
    }
}

@Suite struct EpilogueFusionTests {
    let context = FusionGraphs.noEvaluation

    @Test func standardPipelineFusesResNetBlock() throws {
        var g = FusionGraphs.convBatchNormAddRelu()
        try Pipeline.standard.run(&g, context)
        let expected = """
            graph block(x: f32[1,3,6,6], skip: f32[1,4,6,6]) -> (y: f32[1,4,6,6])
              const n.bias: f32[4]
              const n.weight: f32[4,3,3,3]
              y = convolution[pads=[1, 1, 1, 1],epilogue=residual+relu](x, n.weight, n.bias, skip)    \
            # conv1 + bn1 + add1 + relu1 : f32[1,4,6,6]
            """
        #expect(g.textForm() == expected)
    }

    @Test func constantChannelAddBecomesBiasThenClipActivation() throws {
        var rng = SeededGenerator(seed: 5)
        var g = FusionGraphs.convThen(
            [
                Node(name: "add", layer: BinaryLayer(.add), inputs: ["c", "k"], outputs: ["b"]),
                Node(name: "relu6", layer: ClipLayer(min: 0, max: 6), inputs: ["b"], outputs: ["y"]),
            ], extra: ["k": .random([4, 1, 1], using: &rng)])
        #expect(try EpilogueFusion().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        let expected = """
            graph g(x: f32[1,2,5,5]) -> (y: f32[1,4,5,5])
              const k.bias: f32[4]
              const w: f32[4,2,1,1]
              y = convolution[epilogue=clip(0.0,6.0)](x, w, k.bias)    # conv + add + relu6 : f32[1,4,5,5]
            """
        #expect(g.textForm() == expected)
    }

    @Test func siluPatternBecomesActivation() throws {
        var g = FusionGraphs.convThen([
            Node(name: "sig", layer: UnaryLayer(.sigmoid), inputs: ["c"], outputs: ["s"]),
            Node(name: "mul", layer: BinaryLayer(.mul), inputs: ["c", "s"], outputs: ["y"]),
        ])
        #expect(try EpilogueFusion().run(&g, context))
        let expected = """
            graph g(x: f32[1,2,5,5]) -> (y: f32[1,4,5,5])
              const w: f32[4,2,1,1]
              y = convolution[epilogue=silu](x, w)    # conv + sig + mul : f32[1,4,5,5]
            """
        #expect(g.textForm() == expected)
    }

    @Test func matMulBiasBecomesCThenGelu() throws {
        var rng = SeededGenerator(seed: 9)
        var g = FusionGraphs.matMulThen(
            [
                Node(name: "add", layer: BinaryLayer(.add), inputs: ["k", "m"], outputs: ["b"]),
                Node(name: "gelu", layer: UnaryLayer(.gelu(tanh: false)), inputs: ["b"], outputs: ["y"]),
            ], extra: ["k": .random([4], using: &rng)])
        #expect(try EpilogueFusion().run(&g, context))
        let expected = """
            graph g(a: f32[3,5]) -> (y: f32[3,4])
              const k: f32[4]
              const w: f32[5,4]
              y = matMul[epilogue=gelu](a, w, k)    # mm + add + gelu : f32[3,4]
            """
        #expect(g.textForm() == expected)
    }

    @Test func leavesActivationWhenConvolutionOutputIsAGraphOutput() throws {
        var g = FusionGraphs.convThen([Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["c"], outputs: ["y"])])
        g.outputs.append(GraphValue(name: "c", type: nil))
        #expect(try !EpilogueFusion().run(&g, context))
    }
}
