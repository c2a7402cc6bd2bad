import KilnIR
import KilnOptimizer

extension Graph {
    /// The graph with every tensor input's shape fixed to `shapes` (in input order) and optimized again, so
    /// that shape computations fold and every layer sees concrete shapes. Backends that compile per shape
    /// (the GPU) build from this. `evaluator` runs constant folding; `disabledPasses` are left out of the
    /// standard pipeline, as the builder left them out.
    public func specialized(
        toInputShapes shapes: [[Int]], evaluator: any Device, disabledPasses: Set<String> = [],
        rejectedFusions: (@Sendable (_ node: String, _ reason: String) -> Void)? = nil
    ) throws -> Graph {
        guard shapes.count == inputs.count else {
            throw KilnError.invalidArgument("specialization needs \(inputs.count) input shapes, got \(shapes.count)")
        }
        var graph = self
        for (index, dims) in shapes.enumerated() {
            guard let dtype = graph.inputs[index].type?.tensorType?.dtype else { continue }
            graph.inputs[index].type = .tensor(TensorType(dtype, dims: dims))
        }
        // Types inferred for symbolic shapes would shadow the concrete ones.
        graph.valueTypes = [:]
        for index in graph.outputs.indices { graph.outputs[index].type = nil }
        try graph.inferTypes()
        let device = DeviceEvaluator(device: evaluator)
        let context = PassContext(
            evaluate: { node, inputs in try device.evaluate(node, inputs) }, rejected: rejectedFusions)
        // Each round can only fold what the previous round made concrete (layer after layer in a deep model).
        let pipeline = try Pipeline.standard.disabling(disabledPasses)
        try Pipeline(pipeline.passes, maxRounds: 100).run(&graph, context)
        try graph.inferTypes()
        for index in graph.outputs.indices {
            graph.outputs[index].type = graph.type(of: graph.outputs[index].name) ?? outputs[index].type
        }
        return graph
    }
}
