import KilnIR

/// Removes identity layers by making their consumers read the identity's input directly. An identity whose
/// output is a graph output stays, so graph outputs keep their names. An inference dropout is an identity once
/// nothing reads its mask (older exports name the mask output whether or not anything reads it) and its
/// training flag is absent or a constant false.
public struct IdentityElimination: Pass {
    public let name = "identity-elimination"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        let graphOutputs = Set(graph.outputs.map(\.name))
        let uses = graph.useCounts
        var changed = false
        var index = 0
        while index < graph.nodes.count {
            let node = graph.nodes[index]
            guard isIdentity(node, graph, read: { uses[$0, default: 0] > 0 || graphOutputs.contains($0) }),
                !node.inputs[0].isEmpty, !graphOutputs.contains(node.outputs[0])
            else {
                index += 1
                continue
            }
            graph.nodes.remove(at: index)
            graph.replaceUses(of: node.outputs[0], with: node.inputs[0])
            for output in node.outputs { graph.valueTypes[output] = nil }
            changed = true
        }
        return changed
    }

    /// Whether `node` passes its first input through as its only output that is `read`.
    private func isIdentity(_ node: Node, _ graph: Graph, read: (String) -> Bool) -> Bool {
        guard !node.inputs.isEmpty, !node.outputs.isEmpty else { return false }
        if node.kind == IdentityLayer.kind { return node.inputs.count == 1 && node.outputs.count == 1 }
        guard node.kind == DropoutLayer.kind, node.outputs.dropFirst().allSatisfy({ $0.isEmpty || !read($0) })
        else { return false }
        guard node.inputs.count > 2, !node.inputs[2].isEmpty else { return true }
        return (try? graph.initializers[node.inputs[2]]?.doubleValues()) == [0]
    }
}
