import KilnIR

/// Removes nodes none of whose outputs is used, and initializers nothing reads.
public struct DeadCodeElimination: Pass {
    public let name = "dead-code-elimination"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var live = Set(graph.outputs.map(\.name))
        var keep = [Bool](repeating: false, count: graph.nodes.count)
        for index in graph.nodes.indices.reversed() {
            let node = graph.nodes[index]
            guard node.outputs.contains(where: { live.contains($0) }) else { continue }
            keep[index] = true
            live.formUnion(node.inputs.filter { !$0.isEmpty })
            for sub in node.layer.subgraphs { live.formUnion(sub.capturedValues) }
        }
        let before = graph.nodes.count
        let initializerCount = graph.initializers.count
        graph.nodes = graph.nodes.indices.filter { keep[$0] }.map { graph.nodes[$0] }
        graph.initializers = graph.initializers.filter { live.contains($0.key) }
        return graph.nodes.count != before || graph.initializers.count != initializerCount
    }
}
