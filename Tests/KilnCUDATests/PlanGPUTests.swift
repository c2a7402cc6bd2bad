import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// A CUDA plan carries the cubins of the shapes compiled at build time: loaded on a fresh device it compiles
/// nothing and gives the outputs of the engine it was saved from.
@Suite(.enabled(if: gpuUsable)) struct PlanGPUTests {
    @Test func loadedPlanCompilesNothingAndMatches() throws {
        let graph = try tinyCNN()
        let shapes = [BuildOptions.InputShape(name: graph.inputs[0].name, dims: [4, 3, 32, 32])]
        let built = try Builder.build(graph, device: try CUDADevice())
        try built.prepare(inputShapes: [[4, 3, 32, 32]])
        let file = try built.plan(options: BuildOptions(shapes: shapes)).encoded()
        let plan = try EnginePlan(decoding: file)
        #expect(!plan.code.isEmpty)
        #expect(plan.memory.isEmpty)

        let fresh = try CUDADevice()
        let loaded = try Engine(plan: plan, device: fresh)
        var generator = SeededGenerator(seed: 5)
        let feeds: [String: Value] = [graph.inputs[0].name: .tensor(Tensor.random([4, 3, 32, 32], using: &generator))]
        let got = try loaded.makeContext().run(feeds)
        #expect(fresh.modules.compilations == 0)
        let want = try built.makeContext().run(feeds)
        #expect(Comparison.differingOutputs(want, got, names: built.outputs.map(\.name)) == [])
        // The same build on the same device with the same tactics (as a timing cache gives them) gives the same
        // bytes, cubins included. Without them, timing may pick other algorithms, which the plan records.
        let another = try CUDADevice()
        another.preloadTactics(plan.tactics)
        let again = try Builder.build(graph, device: another)
        try again.prepare(inputShapes: [[4, 3, 32, 32]])
        #expect(try again.plan(options: BuildOptions(shapes: shapes)).encoded() == file)
    }

    /// A constant folded while specializing can keep its name and differ per shape (here `Range(0, N)`, added
    /// to each row of x [N, 4]): each shape runs with its own values, a smaller shape's copy is not reused.
    @Test func constantsFoldedPerShapeKeepTheirOwnValues() throws {
        var n = NetworkBuilder(name: "row-index")
        let x = n.addInput("x", .float32, [.symbol("N"), 4])
        let shape = try n.add(ShapeOfLayer(), [x])[0]
        let rows = try n.add(GatherLayer(axis: 0), [shape, n.addConstant("zero", Tensor(scalar: Int64(0)))])[0]
        let range = try n.add(
            RangeLayer(),
            [
                n.addConstant("start", Tensor(scalar: Int64(0))), rows,
                n.addConstant("step", Tensor(scalar: Int64(1))),
            ])[0]
        let index = try n.add(CastLayer(to: .float32), [range])[0]
        let column = try n.add(ReshapeLayer(.unsqueeze(axes: [1])), [index])[0]
        try n.markOutput(try n.add(x, column), as: "y")
        let engine = try Builder.build(try n.build(), device: try CUDADevice())
        let context = engine.makeContext()
        for batch in [2, 5, 3] {
            let input = Tensor(shape: [batch, 4], scalars: (0..<batch * 4).map { Float($0) })
            let got = try #require(try context.run(["x": .tensor(input)])["y"]).asTensor()
            let want = (0..<batch * 4).map { Float($0 + $0 / 4) }
            #expect(got.scalars(as: Float.self) == want, "batch \(batch)")
        }
    }

    /// A plan built with a profile runs shapes inside it that the build did not compile from its own code and
    /// choices: nothing compiled, nothing timed (library steps follow the nearest compiled shape), the outputs
    /// of an engine built in memory for that shape.
    @Test func shapesInsideAProfileRunFromThePlanUntimed() throws {
        let graph = try tinyCNN()
        let name = graph.inputs[0].name
        let profile = ShapeProfile(inputs: [
            .init(name: name, min: [1, 3, 32, 32], opt: [4, 3, 32, 32], max: [8, 3, 32, 32])
        ])
        var config = BuilderConfig()
        config.profiles = [profile]
        let built = try Builder.build(graph, device: try CUDADevice(), config: config)
        var options = BuildOptions()
        options.profiles = [profile]
        let plan = try EnginePlan(decoding: try built.plan(options: options).encoded())
        let fresh = try CUDADevice()
        let loaded = try Engine(plan: plan, device: fresh)
        let tactics = fresh.tactics
        var generator = SeededGenerator(seed: 9)
        for batch in [3, 6, 2] {
            let feeds: [String: Value] = [name: .tensor(Tensor.random([batch, 3, 32, 32], using: &generator))]
            let got = try loaded.makeContext().run(feeds)
            let want = try built.makeContext().run(feeds)
            for output in built.outputs.map(\.name) {
                let g = try #require(got[output]).asTensor()
                let w = try #require(want[output]).asTensor()
                let error = FloatDifference(g.scalars(as: Float.self), w.scalars(as: Float.self)).relative
                #expect(g.shape == w.shape && error < 1e-5, "batch \(batch) \(output): relative error \(error)")
            }
        }
        #expect(fresh.modules.compilations == 0)
        #expect(fresh.tactics == tactics, "a shape met after the build timed a tactic")
    }
}
