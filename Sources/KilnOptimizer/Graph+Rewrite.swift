import KilnIR

extension Graph {
    /// Replaces every use of value `old` by `new`, in this graph and in nested subgraphs.
    public mutating func replaceUses(of old: String, with new: String) {
        for i in nodes.indices {
            var node = nodes[i]
            var touched = false
            for j in node.inputs.indices where node.inputs[j] == old {
                node.inputs[j] = new
                touched = true
            }
            let subs = node.layer.subgraphs
            if !subs.isEmpty {
                let rewritten = subs.map { sub -> Graph in
                    var sub = sub
                    sub.replaceUses(of: old, with: new)
                    return sub
                }
                node.layer = node.layer.replacingSubgraphs(rewritten)
                touched = true
            }
            if touched { nodes[i] = node }
        }
    }

    /// How many nodes (including nodes of nested subgraphs, counted at their enclosing node) use each value.
    public var useCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for node in nodes {
            for input in node.inputs where !input.isEmpty { counts[input, default: 0] += 1 }
            for sub in node.layer.subgraphs { for name in sub.capturedValues { counts[name, default: 0] += 1 } }
        }
        for output in outputs { counts[output.name, default: 0] += 1 }
        return counts
    }
}
