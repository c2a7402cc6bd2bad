import KilnIR

/// Folds a chain of reshapes into one: a reshape (Reshape, Flatten, Squeeze, Unsqueeze) of a static shape
/// whose input another reshape made, or a transpose that keeps the elements' order (one that moves only axes of
/// size 1, such as the transpose back to channels-first after a global pool), reads that layer's input
/// directly, reshaped straight to its own shape. The layer it skipped goes when nothing else reads it
/// (`DeadCodeElimination`). ResNet's `GlobalAveragePool → Transpose → Flatten → Gemm` on a channels-last
/// engine keeps one view where it had two.
public struct ReshapeFolding: Pass {
    public let name = "reshape-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var producers: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producers[output] = index }
        }
        var changed = false
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard node.layer is ReshapeLayer, let input = node.inputs.first, let output = node.outputs.first,
                let shape = graph.type(of: output)?.tensorType?.concreteShape, let p = producers[input],
                let source = Self.orderKeepingSource(of: graph.nodes[p], graph)
            else { continue }
            graph.nodes[index] = Node(
                name: graph.nodes[p].name + " + " + node.name,
                layer: ReshapeLayer(.reshape(shape: shape, allowZero: true)), inputs: [source], outputs: [output])
            changed = true
        }
        return changed
    }

    /// The input of `node` when its output holds the input's elements in the same order: a reshape, or a
    /// transpose whose axes of size other than 1 keep their order. Nil for anything else.
    static func orderKeepingSource(of node: Node, _ graph: Graph) -> String? {
        guard let input = node.inputs.first, !input.isEmpty else { return nil }
        if node.layer is ReshapeLayer { return input }
        guard let transpose = node.layer as? TransposeLayer,
            let shape = graph.type(of: input)?.tensorType?.concreteShape,
            let perm = try? transpose.permutation(rank: shape.count)
        else { return nil }
        let moved = perm.filter { shape[$0] != 1 }
        return moved == moved.sorted() ? input : nil
    }
}
