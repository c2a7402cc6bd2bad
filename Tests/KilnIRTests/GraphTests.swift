import KilnIR
import Testing

/// A two-input layer for graph tests: output type is the first input's.
struct TestAddLayer: Layer {
    static let kind = LayerKind("test.add")
    func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let a = inputs.first?.tensorType, let b = inputs.last?.tensorType, let sa = a.shape, let sb = b.shape
        else {
            return [nil]
        }
        return [.tensor(TensorType(a.dtype, try Broadcast.dims(sa, sb)))]
    }
}

@Suite struct GraphTests {
    func chain() -> Graph {
        Graph(
            name: "g",
            inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, [.symbol("N"), 3])))],
            outputs: [GraphValue(name: "z", type: nil)],
            initializers: ["b": Tensor(shape: [3], scalars: [Float(1), 2, 3])],
            nodes: [
                Node(name: "second", layer: TestAddLayer(), inputs: ["y", "b"], outputs: ["z"]),
                Node(name: "first", layer: IdentityLayer(), inputs: ["x"], outputs: ["y"]),
            ])
    }

    @Test func topologicalSortOrdersProducersFirst() throws {
        let sorted = try chain().topologicallySorted()
        #expect(sorted.nodes.map(\.name) == ["first", "second"])
        try sorted.verify()
    }

    @Test func verifyRejectsUseBeforeDefinition() {
        #expect {
            try chain().verify()
        } throws: { error in
            "\(error)".contains("node 0 'second'") && "\(error)".contains("'y'")
        }
    }

    @Test func cycleNamesANode() {
        var g = chain()
        g.nodes[1].inputs = ["z"]
        #expect {
            try g.topologicallySorted()
        } throws: { error in
            "\(error)".contains("cycle")
        }
    }

    @Test func typeInferenceKeepsSymbols() throws {
        var g = try chain().topologicallySorted()
        try g.inferTypes()
        #expect(g.type(of: "z") == .tensor(TensorType(.float32, [.symbol("N"), 3])))
        #expect(g.outputs[0].type == .tensor(TensorType(.float32, [.symbol("N"), 3])))
    }

    @Test func textForm() throws {
        var g = try chain().topologicallySorted()
        try g.inferTypes()
        let expected = """
            graph g(x: f32[N,3]) -> (z: f32[N,3])
              const b: f32[3]
              y = identity(x)    # first : f32[N,3]
              z = test.add(y, b)    # second : f32[N,3]
            """
        #expect(g.textForm() == expected)
    }

    @Test func broadcastShapes() throws {
        #expect(try Broadcast.shape([2, 1, 4], [3, 1]) == [2, 3, 4])
        #expect(throws: KilnError.self) { try Broadcast.shape([2, 3], [4]) }
        #expect(try Broadcast.dims([.symbol("N"), 1], [5]) == [.symbol("N"), 5])
        #expect(Broadcast.strides(of: [3, 1], broadcastTo: [2, 3, 4]) == [0, 1, 0])
    }
}
