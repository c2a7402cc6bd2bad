import KilnIR
import KilnOptimizer
import Testing

/// Doubles its input; folding evaluates it through the test's closure, as the builder does through a device.
struct DoubleLayer: Layer {
    static let kind = LayerKind("test.double")
    func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
}

@Suite struct PassTests {
    let context = PassContext(evaluate: { node, inputs in
        guard node.kind == DoubleLayer.kind, let first = inputs.first, let t = try first?.asTensor() else {
            throw KilnError.unsupported("test evaluator")
        }
        return [.tensor(Tensor(shape: t.shape, scalars: t.scalars(as: Float.self).map { $0 * 2 }))]
    })

    func graph() -> Graph {
        Graph(
            name: "g",
            inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, dims: [2])))],
            outputs: [GraphValue(name: "out", type: nil)],
            initializers: ["c": Tensor(shape: [2], scalars: [Float(1), 2])],
            nodes: [
                Node(name: "fold-me", layer: DoubleLayer(), inputs: ["c"], outputs: ["c2"]),
                Node(name: "copy", layer: IdentityLayer(), inputs: ["x"], outputs: ["x2"]),
                Node(name: "unused", layer: DoubleLayer(), inputs: ["x2"], outputs: ["dead"]),
                Node(name: "use", layer: DoubleLayer(), inputs: ["x2"], outputs: ["out"]),
                Node(name: "also", layer: DoubleLayer(), inputs: ["c2"], outputs: ["out2"]),
            ])
    }

    @Test func standardPipeline() throws {
        var g = graph()
        g.outputs.append(GraphValue(name: "out2", type: nil))
        try Pipeline.standard.run(&g, context)
        let expected = """
            graph g(x: f32[2]) -> (out: f32[2], out2: f32[2])
              const out2: f32[2]
              out = test.double(x)    # use : f32[2]
            """
        #expect(g.textForm() == expected)
        #expect(g.initializers["out2"]?.scalars(as: Float.self) == [4, 8])
    }

    @Test func identityEliminationRewiresConsumers() throws {
        var g = graph()
        let changed = try IdentityElimination().run(&g, context)
        #expect(changed)
        #expect(!g.nodes.contains { $0.kind == IdentityLayer.kind })
        #expect(g.nodes.first { $0.name == "use" }?.inputs == ["x"])
    }

    /// x -> dropout (mask output named) -> relu -> y; `training` feeds its training flag when given.
    func dropoutGraph(maskRead: Bool = false, training: Tensor? = nil, trainingInput: Bool = false) -> Graph {
        var g = Graph(
            name: "g",
            inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, dims: [2])))]
                + (trainingInput ? [GraphValue(name: "t", type: .tensor(TensorType(.bool, dims: [])))] : []),
            outputs: [GraphValue(name: "y", type: nil)] + (maskRead ? [GraphValue(name: "mask", type: nil)] : []),
            initializers: training.map { ["t": $0, "ratio": Tensor(scalar: Float(0.5))] } ?? [:],
            nodes: [
                Node(
                    name: "drop", layer: DropoutLayer(),
                    inputs: training != nil || trainingInput ? ["x", "ratio", "t"] : ["x"],
                    outputs: ["d", "mask"]),
                Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["d"], outputs: ["y"]),
            ])
        if trainingInput { g.initializers["ratio"] = Tensor(scalar: Float(0.5)) }
        return g
    }

    @Test func anInferenceDropoutWhoseMaskNobodyReadsIsRemoved() throws {
        for training in [nil, Tensor(scalar: false)] {
            var g = dropoutGraph(training: training)
            #expect(try IdentityElimination().run(&g, context))
            #expect(g.nodes.map(\.name) == ["relu"])
            #expect(g.nodes[0].inputs == ["x"])
        }
        for stays in [
            dropoutGraph(maskRead: true), dropoutGraph(training: Tensor(scalar: true)),
            dropoutGraph(trainingInput: true),
        ] {
            var g = stays
            #expect(try !IdentityElimination().run(&g, context))
        }
    }

    @Test func constantFoldingMakesInitializers() throws {
        var g = graph()
        #expect(try ConstantFolding().run(&g, context))
        #expect(g.initializers["c2"]?.scalars(as: Float.self) == [2, 4])
        #expect(!g.nodes.contains { $0.name == "fold-me" })
    }

    @Test func deadCodeRemovesUnusedNodesAndConstants() throws {
        var g = graph()
        #expect(try DeadCodeElimination().run(&g, context))
        #expect(g.nodes.map(\.name) == ["copy", "use"])
        #expect(g.initializers.isEmpty)
    }

    /// `--no-fuse`/`--passes` leave passes out by name; an unknown name is an error naming the known ones.
    @Test func disablingPassesByName() throws {
        let pipeline = try Pipeline.standard.disabling(["epilogue-fusion", "gelu-recognition"])
        #expect(pipeline.passes.count == Pipeline.standard.passes.count - 2)
        #expect(!pipeline.passes.contains { $0.name == "epilogue-fusion" })
        #expect(throws: KilnError.self) { try Pipeline.standard.disabling(["no-such-pass"]) }
        var g = graph()
        g.outputs.append(GraphValue(name: "out2", type: nil))
        try Pipeline.standard.disabling(["constant-folding"]).run(&g, context)
        #expect(g.nodes.contains { $0.name == "fold-me" })
    }
}
