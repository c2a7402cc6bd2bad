import KilnIR

/// Recognizes softmax written out in primitive layers, `e = exp(x - max(x))` (or `exp(x)`), `y = e / sum(e)`,
/// with the max and sum over the same single axis (ReduceMax/ReduceSum with keepdims), and replaces it by one
/// softmax layer. Without the max subtraction the primitives overflow for large inputs where the softmax
/// kernel does not; otherwise the two agree. Every intermediate must be read only inside the pattern.
public struct SoftmaxRecognition: Pass {
    public let name = "softmax-recognition"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var changed = false
        while let (input, axis, nodes, root) = findMatch(graph) {
            graph.replace(
                covering: nodes, root: root, with: SoftmaxLayer(variant: .softmax, axis: axis), inputs: [input])
            changed = true
        }
        return changed
    }

    /// The single axis a keepdims reduction of `op` at `index` reduces, and its input.
    private func reduction(_ index: Int, _ op: ReduceLayer.Op, _ view: PatternView) -> (input: String, axis: Int)? {
        let node = view.graph.nodes[index]
        guard let reduce = node.layer as? ReduceLayer, reduce.op == op, reduce.keepDims, node.outputs.count == 1,
            let input = node.inputs.first, let rank = view.graph.type(of: input)?.tensorType?.rank
        else { return nil }
        let given = reduce.axes ?? (node.inputs.count > 1 ? view.intConstant(node.inputs[1]) : nil)
        guard let given, let axes = try? reduce.reducedAxes(rank: rank, given: given), axes.count == 1 else {
            return nil
        }
        return (input, axes[0])
    }

    private func findMatch(_ graph: Graph) -> (String, Int, Set<Int>, Int)? {
        let view = PatternView(graph)
        for (index, node) in graph.nodes.enumerated() {
            // y = e / sum(e)
            guard let div = node.layer as? BinaryLayer, div.op == .div, node.inputs.count == 2,
                let s = view.internalProducer(of: node.inputs[1]), let sum = reduction(s, .sum, view),
                sum.input == node.inputs[0], let e = view.producers[node.inputs[0]],
                let exp = view.graph.nodes[e].layer as? UnaryLayer, exp.op == .exp,
                view.readers(of: node.inputs[0]) == [s, index].sorted(), !view.isGraphOutput(node.inputs[0]),
                let dtype = graph.type(of: node.outputs[0])?.tensorType?.dtype, dtype.isFloatingPoint
            else { continue }
            var nodes: Set<Int> = [index, s, e]
            var input = graph.nodes[e].inputs[0]
            // x - max(x): the max must reduce the same axis of the same x.
            if let d = view.internalProducer(of: input), let sub = graph.nodes[d].layer as? BinaryLayer,
                sub.op == .sub, graph.nodes[d].inputs.count == 2,
                let m = view.internalProducer(of: graph.nodes[d].inputs[1]), let max = reduction(m, .max, view),
                max.input == graph.nodes[d].inputs[0], max.axis == sum.axis
            {
                input = max.input
                nodes.formUnion([d, m])
            }
            return (input, sum.axis, nodes, index)
        }
        return nil
    }
}
