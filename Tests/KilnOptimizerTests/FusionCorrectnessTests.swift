import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// Fused graphs must compute what the unfused ones do: each graph runs on the CPU with and without the
/// optimizer on seeded random inputs.
@Suite struct FusionCorrectnessTests {
    func compare(_ graph: Graph, _ inputs: [String: Tensor], fusedLayers: Int) throws {
        let run = try OptimizedVersusPlain(graph, inputs)
        #expect(run.optimized.nodes.count == fusedLayers)
        run.expectSameOutputs()
    }

    @Test func convBatchNormAddRelu() throws {
        var rng = SeededGenerator(seed: 21)
        try compare(
            FusionGraphs.convBatchNormAddRelu(),
            ["x": .random([1, 3, 6, 6], using: &rng), "skip": .random([1, 4, 6, 6], using: &rng)], fusedLayers: 1)
    }

    /// Larger than one GEMM tile and deeper than one depth block, so the epilogue runs on partial and full tiles.
    @Test func largeConvolutionWithBiasResidualAndRelu() throws {
        var rng = SeededGenerator(seed: 22)
        var g = FusionGraphs.convBatchNormAddRelu()
        g.inputs = [
            GraphValue(name: "x", type: FusionGraphs.f32([2, 40, 9, 9])),
            GraphValue(name: "skip", type: FusionGraphs.f32([2, 20, 9, 9])),
        ]
        g.initializers["w"] = .random([20, 40, 3, 3], using: &rng)
        for name in ["gamma", "beta", "mean"] { g.initializers[name] = .random([20], using: &rng) }
        g.initializers["var"] = .random([20], in: 0.2...2, using: &rng)
        g.valueTypes = [:]
        try g.inferTypes()
        try compare(
            g, ["x": .random([2, 40, 9, 9], using: &rng), "skip": .random([2, 20, 9, 9], using: &rng)],
            fusedLayers: 1)
    }

    @Test(arguments: [UnaryOp.sigmoid, .tanh, .gelu(tanh: true), .leakyRelu(alpha: 0.1)])
    func convActivation(_ op: UnaryOp) throws {
        var rng = SeededGenerator(seed: 23)
        let g = FusionGraphs.convThen([Node(name: "act", layer: UnaryLayer(op), inputs: ["c"], outputs: ["y"])])
        try compare(g, ["x": .random([1, 2, 5, 5], in: -3...3, using: &rng)], fusedLayers: 1)
    }

    @Test func convSiLUAndChannelBias() throws {
        var rng = SeededGenerator(seed: 24)
        let g = FusionGraphs.convThen(
            [
                Node(name: "add", layer: BinaryLayer(.add), inputs: ["c", "k"], outputs: ["b"]),
                Node(name: "sig", layer: UnaryLayer(.sigmoid), inputs: ["b"], outputs: ["s"]),
                Node(name: "mul", layer: BinaryLayer(.mul), inputs: ["s", "b"], outputs: ["y"]),
            ], extra: ["k": .random([1, 4, 1, 1], using: &rng)])
        try compare(g, ["x": .random([1, 2, 5, 5], using: &rng)], fusedLayers: 1)
    }

    @Test func matMulBatchNormBiasClip() throws {
        var rng = SeededGenerator(seed: 25)
        let g = FusionGraphs.matMulThen(
            [
                Node(
                    name: "bn", layer: NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
                    inputs: ["m", "gamma", "beta", "mean", "var"], outputs: ["n"]),
                Node(name: "clip", layer: ClipLayer(min: -0.5, max: 0.5), inputs: ["n"], outputs: ["y"]),
            ],
            extra: [
                "gamma": .random([4], using: &rng), "beta": .random([4], using: &rng),
                "mean": .random([4], using: &rng), "var": .random([4], in: 0.2...2, using: &rng),
            ])
        try compare(g, ["a": .random([3, 5], using: &rng)], fusedLayers: 1)
    }
}
