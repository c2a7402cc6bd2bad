import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

/// A graph built for the CPU with and without the optimizer and run on the same inputs: the fusion tests check
/// the optimized graph's shape and that every output agrees with the unoptimized one.
struct OptimizedVersusPlain {
    let optimized: Graph
    /// (expected from the plain graph, actual from the optimized one) per graph output, in order.
    let outputs: [(expected: Value, actual: Value)]

    init(_ graph: Graph, _ feeds: [String: Tensor]) throws {
        let device = CPUDevice(threads: 2)
        let plain = try Builder.build(graph, device: device, config: BuilderConfig(optimize: false))
        let fused = try Builder.build(graph, device: device)
        let values = feeds.mapValues(Value.tensor)
        let expected = try plain.makeContext().run(values)
        let actual = try fused.makeContext().run(values)
        optimized = fused.graph
        outputs = try graph.outputs.map { output in
            (try #require(expected[output.name]), try #require(actual[output.name]))
        }
    }

    /// Records an issue for each output that differs beyond the tolerances.
    func expectSameOutputs(rtol: Double = 1e-4, atol: Double = 1e-5) {
        for (index, pair) in outputs.enumerated() {
            let problem = Comparison.mismatch(pair.actual, pair.expected, rtol: rtol, atol: atol)
            #expect(problem == nil, "output \(index): \(problem ?? "")")
        }
    }
}
