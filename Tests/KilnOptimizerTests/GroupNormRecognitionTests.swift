import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// Group normalization as exporters wrote it before ONNX's GroupNormalization becomes one layer and computes
/// what the primitives compute (CPU, seeded random inputs); look-alikes stay.
@Suite struct GroupNormRecognitionTests {
    static let input = [2, 6, 4, 5]

    func node(_ name: String, _ layer: any Layer, _ inputs: [String], _ output: String) -> Node {
        Node(name: name, layer: layer, inputs: inputs, outputs: [output])
    }

    static func ints(_ values: [Int]) -> Tensor { Tensor(shape: [values.count], scalars: values.map(Int64.init)) }

    func reshape(_ name: String, _ input: String, _ shape: String, _ output: String) -> Node {
        node(name, ReshapeLayer(.reshape(shape: nil, allowZero: false)), [input, shape], output)
    }

    func graph(_ nodes: [Node], grouped: [Int]) -> Graph {
        var rng = SeededGenerator(seed: 61)
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32(Self.input))],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: [
                "grouped": Self.ints(grouped), "back": Self.ints(Self.input),
                "ones": Tensor(shape: [3], scalars: [Float](repeating: 1, count: 3)),
                "zeros": Tensor(shape: [3], scalars: [Float](repeating: 0, count: 3)),
                "gamma": .random([6, 1, 1], in: 0.5...1.5, using: &rng), "beta": .random([1, 6, 1, 1], using: &rng),
                "lastAxis": .random([5], using: &rng),
                "two": Tensor(shape: [], scalars: [Float(2)]), "eps": Tensor(shape: [], scalars: [Float(1e-5)]),
            ],
            nodes: nodes)
        try? g.inferTypes()
        return g
    }

    func run(_ g: Graph) throws -> OptimizedVersusPlain {
        var rng = SeededGenerator(seed: 62)
        let run = try OptimizedVersusPlain(g, ["x": .random(Self.input, in: -3...3, using: &rng)])
        run.expectSameOutputs()
        return run
    }

    /// PyTorch's export (opset < 18): Reshape [N, G, -1], InstanceNormalization with scale 1 and bias 0 per
    /// group, Reshape back, · γ [C, 1, 1], + β [1, C, 1, 1].
    @Test func pytorchExportBecomesGroupNorm() throws {
        let g = graph(
            [
                reshape("r1", "x", "grouped", "r"),
                node("in", NormalizationLayer(method: .instance, epsilon: 1e-5), ["r", "ones", "zeros"], "n"),
                reshape("r2", "n", "back", "b"),
                node("scale", BinaryLayer(.mul), ["b", "gamma"], "s"),
                node("shift", BinaryLayer(.add), ["s", "beta"], "y"),
            ], grouped: [0, 3, -1])
        let optimized = try run(g).optimized
        #expect(optimized.nodes.map(\.kind) == [NormalizationLayer.kind], "\(optimized.textForm())")
        let layer = try #require(optimized.nodes.first?.layer as? NormalizationLayer)
        #expect(layer.method == .group(groups: 3, perGroupAffine: false))
        #expect(optimized.nodes.first?.name == "r1 + in + r2 + scale + shift")
    }

    /// Written out in primitives over [N, G, C/G, H, W]: the layer norm the primitives become, between the
    /// reshapes, is the group norm's middle; without γ and β the affine map is the identity.
    @Test func primitiveChainBecomesGroupNorm() throws {
        let axes = ReduceLayer(op: .mean, axes: [2, 3, 4])
        let g = graph(
            [
                reshape("r1", "x", "grouped", "r"),
                node("mean", axes, ["r"], "m"),
                node("sub", BinaryLayer(.sub), ["r", "m"], "d"),
                node("pow", BinaryLayer(.pow), ["d", "two"], "d2"),
                node("var", axes, ["d2"], "v"),
                node("addeps", BinaryLayer(.add), ["v", "eps"], "ve"),
                node("sqrt", UnaryLayer(.sqrt), ["ve"], "sd"),
                node("div", BinaryLayer(.div), ["d", "sd"], "n"),
                reshape("r2", "n", "back", "y"),
            ], grouped: [2, 3, 2, 4, 5])
        let optimized = try run(g).optimized
        #expect(optimized.nodes.map(\.kind) == [NormalizationLayer.kind], "\(optimized.textForm())")
        #expect(
            (optimized.nodes.first?.layer as? NormalizationLayer)?.method == .group(groups: 3, perGroupAffine: false))
    }

    /// A scale along the last axis is not per channel: the group norm takes the unit affine map and the
    /// multiplication stays after it.
    @Test func scaleAlongAnotherAxisStaysOutside() throws {
        let g = graph(
            [
                reshape("r1", "x", "grouped", "r"),
                node("in", NormalizationLayer(method: .instance), ["r", "ones", "zeros"], "n"),
                reshape("r2", "n", "back", "b"),
                node("scale", BinaryLayer(.mul), ["b", "lastAxis"], "y"),
            ], grouped: [0, 3, -1])
        let optimized = try run(g).optimized
        #expect(optimized.nodes.count == 2 && optimized.nodes[0].kind == NormalizationLayer.kind)
    }

    /// An instance norm with a real per-group scale is not a plain group norm; it stays as written.
    @Test func groupScaleIsNotRecognized() throws {
        var g = graph(
            [
                reshape("r1", "x", "grouped", "r"),
                node("in", NormalizationLayer(method: .instance), ["r", "gammaGroups", "zeros"], "n"),
                reshape("r2", "n", "back", "y"),
            ], grouped: [0, 3, -1])
        g.initializers["gammaGroups"] = Tensor(shape: [3], scalars: [Float(0.5), 2, 1])
        try g.inferTypes()
        let optimized = try run(g).optimized
        #expect(optimized.nodes.map(\.kind) == [ReshapeLayer.kind, NormalizationLayer.kind, ReshapeLayer.kind])
    }
}
