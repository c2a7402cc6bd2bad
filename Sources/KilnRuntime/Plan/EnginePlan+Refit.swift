import KilnIR

extension EnginePlan {
    /// This plan with the weights of `model`, the same network with other weights: the model is optimized as
    /// the plan was (its options, constants folded on `evaluator`), and must give the same optimized graph up
    /// to weight values. Compiled code, tactics and memory plans are kept, so nothing is compiled or timed
    /// again. A different network is refused with the first difference named.
    public func refitted(from model: Graph, evaluator: any Device) throws -> EnginePlan {
        let config = BuilderConfig(optimize: options.optimize, disabledPasses: options.disabledPasses)
        let optimized = try withErrorContext("refit model") {
            try Builder.optimize(model, device: evaluator, config: config)
        }
        if let difference = try Self.firstDifference(graph, optimized) {
            throw KilnError.invalidArgument("the model is not the network this plan was built from: \(difference)")
        }
        var refitted = self
        refitted.graph.initializers = optimized.initializers
        return refitted
    }

    /// The first way `b` differs from `a` other than in weight values, or nil.
    static func firstDifference(_ a: Graph, _ b: Graph) throws -> String? {
        func describe(_ values: [GraphValue]) -> String { values.map(\.description).joined(separator: ", ") }
        if a.inputs != b.inputs {
            return "inputs: the plan has (\(describe(a.inputs))), the model (\(describe(b.inputs)))"
        }
        if a.outputs.map(\.name) != b.outputs.map(\.name) {
            return "outputs: the plan has \(a.outputs.map(\.name)), the model \(b.outputs.map(\.name))"
        }
        for (index, (x, y)) in zip(a.nodes, b.nodes).enumerated() {
            let sameParameters = try PlanCoding.json(x.layer) == PlanCoding.json(y.layer)
            let same = x.name == y.name && x.kind == y.kind && x.inputs == y.inputs && x.outputs == y.outputs
            if !same || !sameParameters {
                return "layer \(index): the plan has '\(x.name)' \(x), the model '\(y.name)' \(y)"
            }
        }
        if a.nodes.count != b.nodes.count {
            return "the plan has \(a.nodes.count) layers, the model \(b.nodes.count)"
        }
        for name in Set(a.initializers.keys).union(b.initializers.keys).sorted() {
            guard let x = a.initializers[name], let y = b.initializers[name] else {
                return "weight '\(name)' is in only one of them"
            }
            if x.dtype != y.dtype || x.shape != y.shape {
                return "weight '\(name)': the plan has \(x.type), the model \(y.type)"
            }
        }
        return nil
    }
}
