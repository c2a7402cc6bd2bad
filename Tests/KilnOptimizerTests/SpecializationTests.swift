import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

/// Shape folding and specialization: a dynamic-batch shape computation (Shape → Concat → Reshape, as
/// exporters emit) folds away once the input shape is fixed, and the result computes the same values.
@Suite struct SpecializationTests {
    /// y = reshape(x, concat(shape(x)[0:1], [-1])): flattens all but the batch axis.
    func flattenByShape() -> Graph {
        Graph(
            inputs: [
                GraphValue(name: "x", type: .tensor(TensorType(.float32, [.symbol("batch"), .value(3), .value(4)])))
            ],
            outputs: [GraphValue(name: "y", type: nil)],
            initializers: ["minus1": Tensor(shape: [1], scalars: [Int64(-1)])],
            nodes: [
                Node(name: "shape", layer: ShapeOfLayer(start: 0, end: 1), inputs: ["x"], outputs: ["b"]),
                Node(name: "cat", layer: ConcatLayer(axis: 0), inputs: ["b", "minus1"], outputs: ["dims"]),
                Node(
                    name: "flat", layer: ReshapeLayer(.reshape(shape: nil, allowZero: false)), inputs: ["x", "dims"],
                    outputs: ["y"]),
            ])
    }

    @Test func shapeFoldingNeedsAKnownShape() throws {
        var graph = flattenByShape()
        let context = PassContext(evaluate: { _, _ in [] })
        #expect(try ShapeFolding().run(&graph, context) == false)
        #expect(graph.nodes.count == 3)
    }

    @Test func specializationFoldsTheShapeComputation() throws {
        let device = CPUDevice(threads: 1)
        let graph = flattenByShape()
        let specialized = try graph.specialized(toInputShapes: [[5, 3, 4]], evaluator: device)
        #expect(specialized.nodes.map(\.kind) == [ReshapeLayer.kind])
        #expect(specialized.type(of: "y")?.tensorType?.concreteShape == [5, 12])
        var rng = SeededGenerator(seed: 3)
        let x = Tensor.random([5, 3, 4], using: &rng)
        let expected = try Builder.build(graph, device: device, config: BuilderConfig(optimize: false))
            .makeContext().run(["x": .tensor(x)])
        let actual = try Builder.build(specialized, device: device).makeContext().run(["x": .tensor(x)])
        #expect(Comparison.mismatch(try #require(actual["y"]), try #require(expected["y"])) == nil)
    }

    @Test func specializationChecksTheShapeCount() {
        #expect(throws: KilnError.self) {
            try flattenByShape().specialized(toInputShapes: [], evaluator: CPUDevice(threads: 1))
        }
    }
}
