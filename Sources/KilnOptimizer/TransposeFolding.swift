import KilnIR

/// Folds a transpose of a matMul operand's last two axes into the matMul's transposeA/transposeB flag, so the
/// library reads the operand in place instead of a kernel copying it. Exporters often wrap the transpose in
/// reshapes that merge or split the leading (batch) axes (`[1, 12, 128, 64] → [12, 128, 64] → Transpose →
/// [12, 64, 128] → [1, 12, 64, 128]`); those are looked through when they keep the last two axes and the
/// source's batch axes equal the operand's. Each value on the way must be read only by the next step.
public struct TransposeFolding: Pass {
    public let name = "transpose-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        graph.rewriteEachNode { index, graph in fold(at: index, &graph) }
    }

    private func fold(at index: Int, _ graph: inout Graph) -> Bool {
        guard var mm = graph.nodes[index].layer as? MatMulLayer, graph.nodes[index].inputs.count >= 2 else {
            return false
        }
        let view = PatternView(graph)
        for operand in 0..<2 {
            guard let (source, covered) = swappedSource(of: graph.nodes[index].inputs[operand], view) else { continue }
            var node = graph.nodes[index]
            node.inputs[operand] = source
            if operand == 0 { mm.transposeA.toggle() } else { mm.transposeB.toggle() }
            node.layer = mm
            node.name = (covered.sorted().map { graph.nodes[$0].name } + [node.name]).joined(separator: " + ")
            graph.nodes[index] = node
            for i in covered.sorted(by: >) {
                for output in graph.nodes[i].outputs { graph.valueTypes[output] = nil }
                graph.nodes.remove(at: i)
            }
            return true
        }
        return false
    }

    /// The value whose last two axes, swapped, give `value`, and the nodes between; nil when there is no such
    /// chain.
    private func swappedSource(of value: String, _ view: PatternView) -> (String, Set<Int>)? {
        guard let target = shape(of: value, view), target.count >= 2 else { return nil }
        var current = value
        var covered: Set<Int> = []
        var swapped = false
        while let p = view.internalProducer(of: current), covered.count < 4 {
            let node = view.graph.nodes[p]
            guard let input = node.inputs.first, let inShape = shape(of: input, view),
                let outShape = shape(of: current, view), inShape.count >= 2
            else { return nil }
            if node.layer is ReshapeLayer {
                // Leading axes may change; the matrix axes may not (before or after the swap alike).
                guard Array(inShape.suffix(2)) == Array(outShape.suffix(2)) else { return nil }
            } else if let transpose = node.layer as? TransposeLayer, !swapped {
                let rank = inShape.count
                guard let perm = try? transpose.permutation(rank: rank),
                    perm == Array(0..<(rank - 2)) + [rank - 1, rank - 2]
                else { return nil }
                swapped = true
            } else {
                break
            }
            covered.insert(p)
            current = input
            if swapped, let source = shape(of: current, view), source.count == target.count,
                Array(source.dropLast(2)) == Array(target.dropLast(2))
            {
                return (current, covered)
            }
        }
        return nil
    }

    private func shape(of value: String, _ view: PatternView) -> [Dim]? {
        view.graph.type(of: value)?.tensorType?.shape
    }
}
