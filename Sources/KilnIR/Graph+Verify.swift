extension Graph {
    /// Checks that the graph is well formed: every value is defined once, before it is used (or comes from an
    /// enclosing graph in `outerScope`), and every graph output is defined. Errors name the node and its index.
    public func verify(outerScope: Set<String> = []) throws {
        var defined = outerScope
        for input in inputs {
            guard !input.name.isEmpty else { throw KilnError.invalidModel("graph '\(name)' has an unnamed input") }
            defined.insert(input.name)
        }
        defined.formUnion(initializers.keys)
        var produced = Set<String>()
        for (index, node) in nodes.enumerated() {
            let location = "node \(index) '\(node.name)' (\(node.kind))"
            for input in node.inputs where !input.isEmpty && !defined.contains(input) {
                throw KilnError.invalidModel(
                    "input '\(input)' is not defined by any earlier node, initializer or graph input"
                )
                .within(location)
            }
            for sub in node.layer.subgraphs {
                try withErrorContext("\(location): subgraph '\(sub.name)'") { try sub.verify(outerScope: defined) }
            }
            for output in node.outputs where !output.isEmpty {
                guard produced.insert(output).inserted else {
                    throw KilnError.invalidModel("output '\(output)' is produced twice").within(location)
                }
                defined.insert(output)
            }
        }
        for output in outputs where !defined.contains(output.name) {
            throw KilnError.invalidModel("graph output '\(output.name)' is not produced by any node")
                .within("graph '\(name)'")
        }
    }

    /// Reorders nodes so every value is produced before it is used (stable for graphs already in order).
    /// Throws, naming a node on the cycle or the dangling value, when no such order exists.
    public func topologicallySorted(outerScope: Set<String> = []) throws -> Graph {
        var available = outerScope.union(inputs.map(\.name)).union(initializers.keys)
        var producer: [String: Int] = [:]
        for (i, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = i }
        }
        func needs(_ node: Node) -> [String] {
            var names = node.inputs.filter { !$0.isEmpty }
            for sub in node.layer.subgraphs { names.append(contentsOf: sub.capturedValues) }
            return names
        }
        var order: [Int] = []
        var state = [UInt8](repeating: 0, count: nodes.count)  // 0 new, 1 on stack, 2 done
        for start in nodes.indices where state[start] == 0 {
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            state[start] = 1
            while let top = stack.last {
                let deps = needs(nodes[top.node])
                if top.next < deps.count {
                    stack[stack.count - 1].next += 1
                    let name = deps[top.next]
                    if available.contains(name) { continue }
                    guard let p = producer[name] else {
                        let node = nodes[top.node]
                        throw KilnError.invalidModel(
                            "input '\(name)' is not produced by any node, initializer or graph input"
                        )
                        .within("node \(top.node) '\(node.name)' (\(node.kind))")
                    }
                    if state[p] == 1 {
                        let node = nodes[p]
                        throw KilnError.invalidModel("the graph has a cycle through value '\(name)'")
                            .within("node \(p) '\(node.name)' (\(node.kind))")
                    }
                    if state[p] == 0 {
                        state[p] = 1
                        stack.append((p, 0))
                    }
                } else {
                    stack.removeLast()
                    state[top.node] = 2
                    order.append(top.node)
                    available.formUnion(nodes[top.node].outputs)
                }
            }
        }
        var sorted = self
        sorted.nodes = order.map { nodes[$0] }
        return sorted
    }
}
