import KilnIR

/// Removes identity layers by making their consumers read the identity's input directly. An identity whose
/// output is a graph output stays, so graph outputs keep their names.
public struct IdentityElimination: Pass {
    public let name = "identity-elimination"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        let graphOutputs = Set(graph.outputs.map(\.name))
        var changed = false
        var index = 0
        while index < graph.nodes.count {
            let node = graph.nodes[index]
            guard node.kind == IdentityLayer.kind, node.inputs.count == 1, node.outputs.count == 1,
                !node.inputs[0].isEmpty, !graphOutputs.contains(node.outputs[0])
            else {
                index += 1
                continue
            }
            graph.nodes.remove(at: index)
            graph.replaceUses(of: node.outputs[0], with: node.inputs[0])
            graph.valueTypes[node.outputs[0]] = nil
            changed = true
        }
        return changed
    }
}
