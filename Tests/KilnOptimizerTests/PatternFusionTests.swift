import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// GELU recognition, scale folding and the matMul residual: the rewritten graph has the expected layers and
/// computes what the original does on the CPU (seeded random inputs).
@Suite struct PatternFusionTests {
    let context = PassContext(evaluate: { _, _ in throw KilnError.unsupported("no folding in these tests") })

    static func scalar(_ v: Float) -> Tensor { Tensor(shape: [], scalars: [v]) }

    /// Runs the graph with and without the standard pipeline and checks that both agree; returns the optimized
    /// graph.
    @discardableResult
    func checkSameOutputs(_ graph: Graph, _ inputs: [String: Tensor]) throws -> Graph {
        let run = try OptimizedVersusPlain(graph, inputs)
        run.expectSameOutputs()
        return run.optimized
    }

    /// `m = a · w`, then the nodes of `tail` (ending in "y"), with the GELU constants as initializers.
    func geluGraph(_ tail: [Node]) -> Graph {
        FusionGraphs.matMulThen(
            tail,
            extra: [
                "sqrt2": Self.scalar(Float(2.0.squareRoot())), "rsqrt2": Self.scalar(Float(0.5.squareRoot())),
                "one": Self.scalar(1), "half": Self.scalar(0.5), "k": Self.scalar(Float((2 / Double.pi).squareRoot())),
                "c3": Self.scalar(0.044715), "three": Self.scalar(3),
            ])
    }

    func node(_ name: String, _ layer: any Layer, _ inputs: [String], _ output: String) -> Node {
        Node(name: name, layer: layer, inputs: inputs, outputs: [output])
    }

    /// The torch form: `x · (0.5 · (erf(x / √2) + 1))`.
    @Test func erfGeluBecomesTheMatMulActivation() throws {
        let g = geluGraph([
            node("div", BinaryLayer(.div), ["m", "sqrt2"], "d"),
            node("erf", UnaryLayer(.erf), ["d"], "e"),
            node("add", BinaryLayer(.add), ["e", "one"], "p"),
            node("half", BinaryLayer(.mul), ["half", "p"], "h"),
            node("gelu", BinaryLayer(.mul), ["m", "h"], "y"),
        ])
        var rng = SeededGenerator(seed: 41)
        let fused = try checkSameOutputs(g, ["a": .random([3, 5], in: -2...2, using: &rng)])
        #expect(fused.nodes.count == 1)
        let mm = try #require(fused.nodes.first?.layer as? MatMulLayer)
        #expect(mm.epilogue.activation == .gelu(tanh: false))
    }

    /// `(x · 0.5) · (1 + erf(x · 1/√2))`, with the constants on the other side.
    @Test func erfGeluInAnotherAssociation() throws {
        var g = geluGraph([
            node("scale", BinaryLayer(.mul), ["rsqrt2", "m"], "d"),
            node("erf", UnaryLayer(.erf), ["d"], "e"),
            node("add", BinaryLayer(.add), ["one", "e"], "p"),
            node("xh", BinaryLayer(.mul), ["m", "half"], "h"),
            node("gelu", BinaryLayer(.mul), ["h", "p"], "y"),
        ])
        var pass = g
        #expect(try GeluRecognition().run(&pass, context))
        #expect(pass.nodes.map(\.kind) == [MatMulLayer.kind, UnaryLayer.kind])
        #expect((pass.nodes[1].layer as? UnaryLayer)?.op == .gelu(tanh: false))
        #expect(pass.nodes[1].inputs == ["m"])
        g.outputs = [GraphValue(name: "y", type: nil)]
        var rng = SeededGenerator(seed: 42)
        try checkSameOutputs(g, ["a": .random([3, 5], in: -2...2, using: &rng)])
    }

    @Test(arguments: [true, false])
    func tanhGelu(powForm: Bool) throws {
        let cube: [Node] =
            powForm
            ? [node("pow", BinaryLayer(.pow), ["m", "three"], "x3")]
            : [node("sq", BinaryLayer(.mul), ["m", "m"], "x2"), node("cube", BinaryLayer(.mul), ["x2", "m"], "x3")]
        let g = geluGraph(
            cube + [
                node("c3", BinaryLayer(.mul), ["c3", "x3"], "t"),
                node("inner", BinaryLayer(.add), ["m", "t"], "s"),
                node("k", BinaryLayer(.mul), ["s", "k"], "u"),
                node("tanh", UnaryLayer(.tanh), ["u"], "e"),
                node("add", BinaryLayer(.add), ["e", "one"], "p"),
                node("xh", BinaryLayer(.mul), ["half", "m"], "h"),
                node("gelu", BinaryLayer(.mul), ["h", "p"], "y"),
            ])
        var rng = SeededGenerator(seed: 43)
        let fused = try checkSameOutputs(g, ["a": .random([3, 5], in: -2...2, using: &rng)])
        #expect(fused.nodes.count == 1)
        #expect((fused.nodes.first?.layer as? MatMulLayer)?.epilogue.activation == .gelu(tanh: true))
    }

    /// An intermediate value that is also a graph output stays: nothing is rewritten.
    @Test func sharedIntermediateBlocksTheRewrite() throws {
        var g = geluGraph([
            node("div", BinaryLayer(.div), ["m", "sqrt2"], "d"),
            node("erf", UnaryLayer(.erf), ["d"], "e"),
            node("add", BinaryLayer(.add), ["e", "one"], "p"),
            node("half", BinaryLayer(.mul), ["half", "p"], "h"),
            node("gelu", BinaryLayer(.mul), ["m", "h"], "y"),
        ])
        g.outputs.append(GraphValue(name: "e", type: nil))
        #expect(try !GeluRecognition().run(&g, context))
    }

    /// A wrong constant (x / 2 instead of x / √2) is not GELU.
    @Test func wrongConstantIsNotGelu() throws {
        var g = geluGraph([
            node("div", BinaryLayer(.div), ["m", "three"], "d"),
            node("erf", UnaryLayer(.erf), ["d"], "e"),
            node("add", BinaryLayer(.add), ["e", "one"], "p"),
            node("half", BinaryLayer(.mul), ["half", "p"], "h"),
            node("gelu", BinaryLayer(.mul), ["m", "h"], "y"),
        ])
        #expect(try !GeluRecognition().run(&g, context))
    }

    /// `(q · s) · (kᵀ · s)` becomes one matMul with alpha s², whatever C it has.
    @Test func scalesFoldIntoAlpha() throws {
        var rng = SeededGenerator(seed: 44)
        var g = Graph(
            name: "g",
            inputs: [
                GraphValue(name: "q", type: FusionGraphs.f32([2, 3, 4])),
                GraphValue(name: "k", type: FusionGraphs.f32([2, 4, 3])),
            ],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: ["s": Self.scalar(0.35), "d": Self.scalar(2), "mask": .random([2, 1, 3], using: &rng)],
            nodes: [
                node("sq", BinaryLayer(.mul), ["q", "s"], "qs"),
                node("sk", BinaryLayer(.div), ["k", "d"], "ks"),
                node("mm", MatMulLayer(), ["qs", "ks", "mask"], "y"),
            ])
        try g.inferTypes()
        let fused = try checkSameOutputs(
            g, ["q": .random([2, 3, 4], using: &rng), "k": .random([2, 4, 3], using: &rng)])
        #expect(fused.nodes.count == 1)
        let mm = try #require(fused.nodes.first?.layer as? MatMulLayer)
        #expect(abs(mm.alpha - 0.175) < 1e-6)
        #expect(fused.nodes.first?.inputs == ["q", "k", "mask"])
    }

    /// A scale divided by (constant / x) is not a scale of x: the division's constant must be the divisor.
    @Test func constantDividedByValueStays() throws {
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "q", type: FusionGraphs.f32([3, 4]))],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: ["d": Self.scalar(2), "w": Tensor(shape: [4, 2], scalars: [Float](repeating: 1, count: 8))],
            nodes: [
                node("inv", BinaryLayer(.div), ["d", "q"], "qs"),
                node("mm", MatMulLayer(), ["qs", "w"], "y"),
            ])
        try g.inferTypes()
        #expect(try !ScaleFolding().run(&g, context))
    }

    /// `a · w + bias + skip` (the transformer's output projection and residual) is one matMul: the bias in C,
    /// the residual as input 3.
    @Test func matMulWithBiasTakesTheResidual() throws {
        var rng = SeededGenerator(seed: 45)
        var g = FusionGraphs.matMulThen(
            [
                node("bias", BinaryLayer(.add), ["m", "b"], "mb"),
                node("residual", BinaryLayer(.add), ["skip", "mb"], "r"),
                node("relu", UnaryLayer(.relu), ["r"], "y"),
            ], extra: ["b": .random([4], using: &rng)])
        g.inputs.append(GraphValue(name: "skip", type: FusionGraphs.f32([3, 4])))
        try g.inferTypes()
        let fused = try checkSameOutputs(
            g, ["a": .random([3, 5], using: &rng), "skip": .random([3, 4], using: &rng)])
        #expect(fused.nodes.count == 1)
        let mm = try #require(fused.nodes.first?.layer as? MatMulLayer)
        #expect(mm.epilogue == Epilogue(residual: true, activation: .relu))
        #expect(fused.nodes.first?.inputs.count == 4)
    }

    /// `q · reshape(transpose(reshape(k)))`, the exported `Q · Kᵀ`: one matMul with transposeB reading k in place.
    @Test func transposeBetweenReshapesFoldsIntoMatMul() throws {
        var rng = SeededGenerator(seed: 46)
        var g = Graph(
            name: "g",
            inputs: [
                GraphValue(name: "q", type: FusionGraphs.f32([1, 3, 5, 4])),
                GraphValue(name: "k", type: FusionGraphs.f32([1, 3, 5, 4])),
            ],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: [
                "s1": Tensor(shape: [3], scalars: [Int64(3), 5, 4]),
                "s2": Tensor(shape: [4], scalars: [Int64(1), 3, 4, 5]),
            ],
            nodes: [
                node("r1", ReshapeLayer(.reshape(shape: nil, allowZero: false)), ["k", "s1"], "k3"),
                node("t", TransposeLayer(perm: [0, 2, 1]), ["k3"], "kt"),
                node("r2", ReshapeLayer(.reshape(shape: nil, allowZero: false)), ["kt", "s2"], "kt4"),
                node("mm", MatMulLayer(), ["q", "kt4"], "y"),
            ])
        try g.inferTypes()
        let fused = try checkSameOutputs(
            g, ["q": .random([1, 3, 5, 4], using: &rng), "k": .random([1, 3, 5, 4], using: &rng)])
        #expect(fused.nodes.count == 1)
        let mm = try #require(fused.nodes.first?.layer as? MatMulLayer)
        #expect(mm.transposeB && !mm.transposeA)
        #expect(fused.nodes.first?.inputs == ["q", "k"])
    }

    /// A transpose of other axes is a real data movement and stays.
    @Test func otherTransposeStays() throws {
        var g = Graph(
            name: "g",
            inputs: [
                GraphValue(name: "q", type: FusionGraphs.f32([2, 3, 4])),
                GraphValue(name: "k", type: FusionGraphs.f32([3, 2, 4])),
            ],
            outputs: [GraphValue(name: "y", type: nil)], initializers: [:],
            nodes: [
                node("t", TransposeLayer(perm: [1, 2, 0]), ["k"], "kt"),
                node("mm", MatMulLayer(), ["q", "kt"], "y"),
            ])
        try g.inferTypes()
        #expect(try !TransposeFolding().run(&g, context))
    }

    /// `Where(IsNaN(softmax(x)), 0, softmax(x))` is one softmax that writes 0 for NaN; a fully masked row (all
    /// -inf) gives zeros, as the unfused graph does.
    @Test func softmaxNaNGuardFolds() throws {
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([3, 4]))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: ["zero": Self.scalar(0)],
            nodes: [
                node("softmax", SoftmaxLayer(variant: .softmax), ["x"], "s"),
                node("isnan", UnaryLayer(.isNaN), ["s"], "bad"),
                node("where", SelectLayer(), ["bad", "zero", "s"], "y"),
            ])
        try g.inferTypes()
        var rng = SeededGenerator(seed: 47)
        var x = Tensor.random([3, 4], using: &rng).scalars(as: Float.self)
        for i in 4..<8 { x[i] = -.infinity }
        let fused = try checkSameOutputs(g, ["x": Tensor(shape: [3, 4], scalars: x)])
        #expect(fused.nodes.count == 1)
        #expect((fused.nodes.first?.layer as? SoftmaxLayer)?.zeroNaN == true)
        let out = try Builder.build(g, device: CPUDevice(threads: 1)).makeContext().run(
            ["x": .tensor(Tensor(shape: [3, 4], scalars: x))])
        let y = try #require(try out["y"]?.asTensor()).scalars(as: Float.self)
        #expect(Array(y[4..<8]) == [0, 0, 0, 0])
    }
}
