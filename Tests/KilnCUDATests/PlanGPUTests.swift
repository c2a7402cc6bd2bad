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
}
