import KilnIR

/// Replaces `shapeOf` and `size` nodes whose input has a fully known shape by constants, after refreshing
/// the graph's types, so that shape computations (Shape → Gather → Concat → Reshape, as exporters emit for
/// dynamic axes) fold away once the shapes are known, for instance when an engine is specialized to the shapes
/// of its inputs.
public struct ShapeFolding: Pass {
    public let name = "shape-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.inferTypes()
        var changed = false
        var remaining: [Node] = []
        for node in graph.nodes {
            guard let folded = folded(node, graph), let output = node.outputs.first, !output.isEmpty else {
                remaining.append(node)
                continue
            }
            graph.initializers[output] = folded
            graph.valueTypes[output] = .tensor(folded.type)
            changed = true
        }
        graph.nodes = remaining
        return changed
    }

    private func folded(_ node: Node, _ graph: Graph) -> Tensor? {
        guard node.outputs.count == 1, let input = node.inputs.first, !input.isEmpty,
            let dims = graph.type(of: input)?.tensorType?.concreteShape
        else { return nil }
        if let layer = node.layer as? ShapeOfLayer {
            let range = layer.range(rank: dims.count)
            return Tensor(shape: [range.count], scalars: dims[range].map(Int64.init))
        }
        if node.layer is SizeLayer {
            return Tensor(scalar: Int64(dims.reduce(1, *)))
        }
        return nil
    }
}
