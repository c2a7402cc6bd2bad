import Foundation
import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// Chains of pointwise layers become one fused layer that computes what the chain computes.
@Suite struct PointwiseFusionTests {
    func node(_ name: String, _ layer: any Layer, _ inputs: [String], _ output: String) -> Node {
        Node(name: name, layer: layer, inputs: inputs, outputs: [output])
    }

    /// The optimized graph and output "y" (the first output) without and with the optimizer.
    func run(_ g: Graph, _ feeds: [String: Tensor]) throws -> (fused: Graph, plain: Value, actual: Value) {
        let run = try OptimizedVersusPlain(g, feeds)
        return (run.optimized, run.outputs[0].expected, run.outputs[0].actual)
    }

    /// `relu(erf(x · s) + b) → where(x > 0, ·, x)`: one layer, x read once as an input by several steps.
    @Test func chainWithBroadcastAndSharedInputIsOneLayer() throws {
        var rng = SeededGenerator(seed: 61)
        var g = Graph(
            name: "g",
            inputs: [
                GraphValue(name: "x", type: FusionGraphs.f32([3, 4, 5])),
                GraphValue(name: "b", type: FusionGraphs.f32([5])),
            ],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: [
                "s": Tensor(shape: [], scalars: [Float(0.7)]), "zero": Tensor(shape: [], scalars: [Float(0)]),
            ],
            nodes: [
                node("scale", BinaryLayer(.mul), ["x", "s"], "xs"),
                node("erf", UnaryLayer(.erf), ["xs"], "e"),
                node("bias", BinaryLayer(.add), ["e", "b"], "eb"),
                node("relu", UnaryLayer(.relu), ["eb"], "r"),
                node("positive", BinaryLayer(.greater), ["x", "zero"], "p"),
                node("where", SelectLayer(), ["p", "r", "x"], "y"),
            ])
        try g.inferTypes()
        let (fused, e, a) = try run(
            g, ["x": .random([3, 4, 5], in: -2...2, using: &rng), "b": .random([5], using: &rng)])
        #expect(Comparison.mismatch(a, e, rtol: 1e-6, atol: 1e-7) == nil)
        #expect(fused.nodes.count == 1, "\(fused.textForm())")
        let layer = try #require(fused.nodes.first?.layer as? FusedPointwiseLayer)
        #expect(layer.steps.count == 6)
        #expect(Set(fused.nodes[0].inputs) == ["x", "s", "b", "zero"])
    }

    /// ReLU6 exported as Max and Min joins the chain as binary steps; a mean of two stays its own layer.
    @Test func twoInputMaxMinAndSumJoinTheChain() throws {
        var rng = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([2, 3, 40]))],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: [
                "zero": Tensor(shape: [], scalars: [Float(0)]), "six": Tensor(shape: [], scalars: [Float(6)]),
                "b": .random([40], using: &rng),
            ],
            nodes: [
                node("max", VariadicLayer(.max), ["x", "zero"], "r"),
                node("min", VariadicLayer(.min), ["r", "six"], "r6"),
                node("sum", VariadicLayer(.sum), ["r6", "b"], "s"),
                node("mean", VariadicLayer(.mean), ["s", "x"], "y"),
            ])
        try g.inferTypes()
        let (fused, e, a) = try run(g, ["x": .random([2, 3, 40], in: -8...8, using: &rng)])
        #expect(Comparison.mismatch(a, e, rtol: 0, atol: 0) == nil)
        #expect(fused.nodes.count == 2, "\(fused.textForm())")
        let layer = try #require(fused.nodes.first?.layer as? FusedPointwiseLayer)
        #expect(layer.description == "max(in0,in1); min(s0,in2); add(s1,in3)")
        #expect(fused.nodes.last?.layer is VariadicLayer)
    }

    /// A value read twice outside the chain stays a tensor: the chain is cut there.
    @Test func sharedIntermediateCutsTheChain() throws {
        var rng = SeededGenerator(seed: 62)
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([8]))],
            outputs: [GraphValue(name: "y", type: nil), GraphValue(name: "t", type: nil)],
            nodes: [
                node("exp", UnaryLayer(.exp), ["x"], "t"),
                node("neg", UnaryLayer(.neg), ["t"], "y"),
            ])
        try g.inferTypes()
        let (fused, e, a) = try run(g, ["x": .random([8], using: &rng)])
        #expect(fused.nodes.count == 2)
        #expect(Comparison.mismatch(a, e) == nil)
    }

    /// A broadcasting step whose result is larger than its producer's output is not fused into it (the
    /// producer would be recomputed per output element, and its shape differs).
    @Test func shapeChangeCutsTheChain() throws {
        var rng = SeededGenerator(seed: 63)
        var g = Graph(
            name: "g",
            inputs: [
                GraphValue(name: "x", type: FusionGraphs.f32([5])),
                GraphValue(name: "z", type: FusionGraphs.f32([4, 5])),
            ],
            outputs: [GraphValue(name: "y", type: nil)],
            nodes: [
                node("exp", UnaryLayer(.exp), ["x"], "t"),
                node("add", BinaryLayer(.add), ["t", "z"], "y"),
            ])
        try g.inferTypes()
        let (fused, e, a) = try run(g, ["x": .random([5], using: &rng), "z": .random([4, 5], using: &rng)])
        #expect(fused.nodes.count == 2)
        #expect(Comparison.mismatch(a, e) == nil)
    }

    /// A fusion the passes consider and cannot make is reported with its reason (`kiln inspect --verbose`).
    @Test func rejectedFusionsAreReported() throws {
        let log = RejectionLog()
        var g = FusionGraphs.convThen([
            node("relu", UnaryLayer(.relu), ["c"], "y"),
            node("also", UnaryLayer(.neg), ["c"], "z"),
        ])
        g.outputs.append(GraphValue(name: "z", type: nil))
        #expect(try !EpilogueFusion().run(&g, log.context))
        #expect(log.lines == ["conv: relu not fused into its epilogue: its output 'c' is read by 2 layers"])
    }
}
