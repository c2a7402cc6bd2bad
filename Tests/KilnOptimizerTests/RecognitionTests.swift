import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// Layer norm, RMS norm and softmax written in primitives become one layer each, and compute what the
/// primitives compute (CPU, seeded random inputs).
@Suite struct RecognitionTests {
    static func scalar(_ v: Float) -> Tensor { Tensor(shape: [], scalars: [v]) }

    func node(_ name: String, _ layer: any Layer, _ inputs: [String], _ output: String) -> Node {
        Node(name: name, layer: layer, inputs: inputs, outputs: [output])
    }

    func graph(_ nodes: [Node], input: [Int] = [2, 5, 8], extra: [String: Tensor] = [:]) -> Graph {
        var rng = SeededGenerator(seed: 51)
        var initializers: [String: Tensor] = [
            "two": Self.scalar(2), "eps": Self.scalar(1e-5), "gamma": .random([8], using: &rng),
            "beta": .random([8], using: &rng), "axes": Tensor(shape: [1], scalars: [Int64(-1)]),
        ]
        initializers.merge(extra) { a, _ in a }
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32(input))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: initializers, nodes: nodes)
        try? g.inferTypes()
        return g
    }

    @discardableResult
    func check(_ g: Graph, kind: LayerKind, input: [Int] = [2, 5, 8]) throws -> Graph {
        var rng = SeededGenerator(seed: 52)
        let run = try OptimizedVersusPlain(g, ["x": .random(input, in: -3...3, using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [kind], "\(run.optimized.textForm())")
        return run.optimized
    }

    /// The pre-opset-17 export: mean, sub, pow, mean, add ε, sqrt, div, · γ, + β.
    @Test func layerNormFromPrimitives() throws {
        let g = graph([
            node("mean", ReduceLayer(op: .mean, axes: [-1]), ["x"], "m"),
            node("sub", BinaryLayer(.sub), ["x", "m"], "d"),
            node("pow", BinaryLayer(.pow), ["d", "two"], "d2"),
            node("var", ReduceLayer(op: .mean, axes: nil), ["d2", "axes"], "v"),
            node("addeps", BinaryLayer(.add), ["v", "eps"], "ve"),
            node("sqrt", UnaryLayer(.sqrt), ["ve"], "s"),
            node("div", BinaryLayer(.div), ["d", "s"], "n"),
            node("scale", BinaryLayer(.mul), ["n", "gamma"], "ng"),
            node("shift", BinaryLayer(.add), ["beta", "ng"], "y"),
        ])
        let fused = try check(g, kind: NormalizationLayer.kind)
        let layer = try #require(fused.nodes.first?.layer as? NormalizationLayer)
        #expect(layer.method == .layer(axis: -1) && abs(layer.epsilon - 1e-5) < 1e-9)
    }

    /// Without γ and β, the square as d · d and the division as a reciprocal.
    @Test func layerNormWithoutAffineAndReciprocal() throws {
        let g = graph([
            node("mean", ReduceLayer(op: .mean, axes: [2]), ["x"], "m"),
            node("sub", BinaryLayer(.sub), ["x", "m"], "d"),
            node("sq", BinaryLayer(.mul), ["d", "d"], "d2"),
            node("var", ReduceLayer(op: .mean, axes: [-1]), ["d2"], "v"),
            node("addeps", BinaryLayer(.add), ["eps", "v"], "ve"),
            node("sqrt", UnaryLayer(.sqrt), ["ve"], "s"),
            node("rec", UnaryLayer(.reciprocal), ["s"], "r"),
            node("mul", BinaryLayer(.mul), ["r", "d"], "y"),
        ])
        try check(g, kind: NormalizationLayer.kind)
    }

    @Test func rmsNormFromPrimitives() throws {
        let g = graph([
            node("pow", BinaryLayer(.pow), ["x", "two"], "x2"),
            node("ms", ReduceLayer(op: .mean, axes: [-1]), ["x2"], "m"),
            node("addeps", BinaryLayer(.add), ["m", "eps"], "me"),
            node("sqrt", UnaryLayer(.sqrt), ["me"], "s"),
            node("div", BinaryLayer(.div), ["x", "s"], "n"),
            node("scale", BinaryLayer(.mul), ["gamma", "n"], "y"),
        ])
        let fused = try check(g, kind: NormalizationLayer.kind)
        #expect((fused.nodes.first?.layer as? NormalizationLayer)?.method == .rms(axis: -1))
    }

    /// Means over different axes are no layer norm: what remains is an RMS norm of `x - mean₁(x)`, which is
    /// exactly what the primitives compute.
    @Test func mismatchedAxesGiveRMSNormOfTheDifference() throws {
        let g = graph([
            node("mean", ReduceLayer(op: .mean, axes: [1]), ["x"], "m"),
            node("sub", BinaryLayer(.sub), ["x", "m"], "d"),
            node("pow", BinaryLayer(.pow), ["d", "two"], "d2"),
            node("var", ReduceLayer(op: .mean, axes: [-1]), ["d2"], "v"),
            node("addeps", BinaryLayer(.add), ["v", "eps"], "ve"),
            node("sqrt", UnaryLayer(.sqrt), ["ve"], "s"),
            node("div", BinaryLayer(.div), ["d", "s"], "y"),
        ])
        var rng = SeededGenerator(seed: 53)
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 5, 8], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [ReduceLayer.kind, BinaryLayer.kind, NormalizationLayer.kind])
        #expect((run.optimized.nodes.last?.layer as? NormalizationLayer)?.method == .rms(axis: -1))
    }

    @Test(arguments: [true, false])
    func softmaxFromPrimitives(subtractMax: Bool) throws {
        let shift: [Node] =
            subtractMax
            ? [
                node("max", ReduceLayer(op: .max, axes: [1]), ["x"], "mx"),
                node("sub", BinaryLayer(.sub), ["x", "mx"], "xs"),
            ] : []
        let g = graph(
            shift + [
                node("exp", UnaryLayer(.exp), [subtractMax ? "xs" : "x"], "e"),
                node("sum", ReduceLayer(op: .sum, axes: [1]), ["e"], "s"),
                node("div", BinaryLayer(.div), ["e", "s"], "y"),
            ])
        let fused = try check(g, kind: SoftmaxLayer.kind)
        #expect((fused.nodes.first?.layer as? SoftmaxLayer)?.axis == 1)
    }
}
