import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

/// A reshape of a reshape, or of a transpose that keeps the elements' order, reads the first layer's input.
@Suite struct ReshapeFoldingTests {
    let context = FusionGraphs.noEvaluation

    /// x [2, 1, 1, 8] (a channels-last global pool's output) -> transpose to [2, 8, 1, 1] -> `tail` -> y.
    static func transposeThen(_ tail: Layer, perm: [Int] = [0, 3, 1, 2], extraOutput: Bool = false) -> Graph {
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([2, 1, 1, 8]))],
            outputs: [GraphValue(name: "y", type: nil)] + (extraOutput ? [GraphValue(name: "t", type: nil)] : []),
            initializers: [:],
            nodes: [
                Node(name: "back", layer: TransposeLayer(perm: perm), inputs: ["x"], outputs: ["t"]),
                Node(name: "flat", layer: tail, inputs: ["t"], outputs: ["y"]),
            ])
        try? g.inferTypes()
        return g
    }

    @Test func aFlattenAfterAnOrderKeepingTransposeReadsItsInput() throws {
        var g = Self.transposeThen(ReshapeLayer(.flatten(axis: 1)))
        #expect(try ReshapeFolding().run(&g, context))
        _ = try DeadCodeElimination().run(&g, context)
        #expect(
            g.textForm() == """
                graph g(x: f32[2,1,1,8]) -> (y: f32[2,8])
                  y = reshape[shape=[2,8],allowzero](x)    # back + flat : f32[2,8]
                """, "\(g.textForm())")
        #expect(try !ReshapeFolding().run(&g, context), "nothing left to fold")
    }

    @Test func aChainOfReshapesBecomesOneWithTheSameOutputs() throws {
        var g = Graph(
            name: "chain", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([2, 3, 4]))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: [:],
            nodes: [
                Node(name: "flat", layer: ReshapeLayer(.flatten(axis: 1)), inputs: ["x"], outputs: ["f"]),
                Node(name: "lift", layer: ReshapeLayer(.unsqueeze(axes: [0])), inputs: ["f"], outputs: ["l"]),
                Node(
                    name: "shape", layer: ReshapeLayer(.reshape(shape: [4, 6], allowZero: false)), inputs: ["l"],
                    outputs: ["y"]),
            ])
        try g.inferTypes()
        var rng = SeededGenerator(seed: 41)
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 3, 4], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map { $0.kind } == [ReshapeLayer.kind], "\(run.optimized.textForm())")
    }

    /// A transpose that reorders axes longer than 1 moves elements: the flatten keeps reading it. A transpose
    /// something else reads stays for that reader.
    @Test func whatMovesElementsOrIsReadElsewhereStays() throws {
        var moving = Self.transposeThen(ReshapeLayer(.flatten(axis: 1)), perm: [3, 1, 2, 0])
        #expect(try !ReshapeFolding().run(&moving, context))
        var shared = Self.transposeThen(ReshapeLayer(.flatten(axis: 1)), extraOutput: true)
        #expect(try ReshapeFolding().run(&shared, context))
        _ = try DeadCodeElimination().run(&shared, context)
        #expect(shared.nodes.map(\.name) == ["back", "back + flat"])
    }
}
