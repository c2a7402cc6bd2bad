import KilnIR

/// Moves transposes and reshapes of a product's rows across the product, to where other passes can fold them.
/// A matMul with a 2-D right operand treats every leading axis of A as rows, so reordering rows commutes with
/// it: `(T·X)·W = T·(X·W)` for any shuffle T that keeps the last axis in place.
///
/// - Down: `MatMul(Transpose(X), W)` becomes `Transpose(MatMul(X, W))` when the product's readers are all
///   shuffles (torch's sequence-first attention transposes its input before the packed Q/K/V projection; moved
///   after it, attention fusion folds it into its views).
/// - Up: a chain of reshapes/transposes after `MatMul(A, W)` moves onto A when A comes from a shuffle (or
///   fused attention) and the chain's result is read by something else (the output projection after
///   attention: the attention then writes the final layout itself and the residual add meets the product).
///
/// "Shuffle" in the conditions means a view node (`StridedView.isView`). The two directions never undo each
/// other: down needs X not to come from a shuffle, up needs it to.
public struct RowShuffleMotion: Pass {
    public let name = "row-shuffle-motion"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        graph.rewriteEachNode { index, graph in moveDown(at: index, &graph) || moveUp(at: index, &graph) }
    }

    /// Whether the product can have its rows reordered: 2-D B, a bias (if any) per column, no residual.
    private func rowwise(_ node: Node, _ graph: Graph) -> MatMulLayer? {
        guard let mm = node.layer as? MatMulLayer, !mm.transposeA, !mm.epilogue.residual,
            node.inputs.count == 2 || node.inputs.count == 3, node.outputs.count == 1,
            graph.type(of: node.inputs[1])?.tensorType?.shape?.count == 2,
            node.inputs.count == 2 || graph.type(of: node.inputs[2])?.tensorType?.shape?.count == 1
        else { return nil }
        return mm
    }

    private func keepsLastAxis(_ t: TransposeLayer, rank: Int) -> Bool {
        guard let perm = try? t.permutation(rank: rank) else { return false }
        return perm.last == rank - 1
    }

    private func moveDown(at index: Int, _ graph: inout Graph) -> Bool {
        let node = graph.nodes[index]
        let view = PatternView(graph)
        guard let mm = rowwise(node, graph), let t = view.internalProducer(of: node.inputs[0]),
            let transpose = graph.nodes[t].layer as? TransposeLayer, let x = graph.nodes[t].inputs.first,
            let xType = graph.type(of: x)?.tensorType, let xShape = xType.shape, xShape.count >= 2,
            keepsLastAxis(transpose, rank: xShape.count),
            view.producers[x].map({ !StridedView.isView(graph.nodes[$0], in: graph) }) ?? true,
            let outType = graph.type(of: node.outputs[0])?.tensorType, let outShape = outType.shape
        else { return false }
        let readers = graph.nodes.filter { $0.inputs.contains(node.outputs[0]) }
        guard !readers.isEmpty, readers.allSatisfy({ StridedView.isView($0, in: graph) }),
            !graph.outputs.contains(where: { $0.name == node.outputs[0] })
        else { return false }
        let rows = graph.freshName(node.outputs[0] + "_rows")
        graph.valueTypes[rows] = .tensor(
            TensorType(outType.dtype, Array(xShape.dropLast()) + [outShape[outShape.count - 1]]))
        var product = node
        product.inputs[0] = x
        product.outputs = [rows]
        product.layer = mm
        let moved = Node(name: graph.nodes[t].name, layer: transpose, inputs: [rows], outputs: node.outputs)
        graph.valueTypes[node.inputs[0]] = nil
        graph.nodes[index] = moved
        graph.nodes.insert(product, at: index)
        graph.nodes.remove(at: t)
        return true
    }

    private func moveUp(at index: Int, _ graph: inout Graph) -> Bool {
        let node = graph.nodes[index]
        let view = PatternView(graph)
        guard let mm = rowwise(node, graph), let aProducer = view.producers[node.inputs[0]],
            StridedView.isView(graph.nodes[aProducer], in: graph)
                || graph.nodes[aProducer].layer is FusedAttentionLayer,
            let aShape = graph.type(of: node.inputs[0])?.tensorType?.concreteShape, let depth = aShape.last
        else { return false }
        // The row shuffles after the product, each read only by the next.
        var chain: [Int] = []
        var current = node.outputs[0]
        while chain.count < 8, let c = view.soleConsumer(of: current), graph.nodes[c].inputs.first == current,
            let out = graph.type(of: graph.nodes[c].outputs[0])?.tensorType?.concreteShape,
            let input = graph.type(of: current)?.tensorType?.concreteShape, isRowShuffle(graph.nodes[c], input, out)
        {
            chain.append(c)
            current = graph.nodes[c].outputs[0]
        }
        guard let last = chain.last else { return false }
        let readers = graph.nodes.filter { $0.inputs.contains(current) }
        guard readers.isEmpty || !readers.allSatisfy({ StridedView.isView($0, in: graph) }) else { return false }
        // The same shuffles on A: reshape targets keep their rows and take A's depth as the last axis.
        var moved: [Node] = []
        var value = node.inputs[0]
        for c in chain {
            let original = graph.nodes[c]
            guard let outType = graph.type(of: original.outputs[0])?.tensorType, let out = outType.concreteShape else {
                return false
            }
            let shape = Array(out.dropLast()) + [depth]
            let layer: any Layer =
                original.layer is ReshapeLayer ? ReshapeLayer(.reshape(shape: shape, allowZero: false)) : original.layer
            let next = graph.freshName(original.outputs[0] + "_rows")
            // Typed now, so attention fusion in the same round sees the chain's shapes.
            graph.valueTypes[next] = .tensor(TensorType(outType.dtype, dims: shape))
            moved.append(Node(name: original.name, layer: layer, inputs: [value], outputs: [next]))
            value = next
        }
        var product = node
        product.inputs[0] = value
        product.outputs = graph.nodes[last].outputs
        product.layer = mm
        for c in chain { graph.valueTypes[graph.nodes[c].inputs[0]] = nil }
        graph.nodes[last] = product
        graph.nodes.insert(contentsOf: moved, at: last)
        for c in (chain.dropLast() + [index]).sorted(by: >) { graph.nodes.remove(at: c) }
        return true
    }

    /// A reshape or transpose from `input` to `out` that leaves the last axis (and its size) alone.
    private func isRowShuffle(_ node: Node, _ input: [Int], _ out: [Int]) -> Bool {
        guard let a = input.last, let b = out.last, a == b, !input.isEmpty else { return false }
        if let t = node.layer as? TransposeLayer { return keepsLastAxis(t, rank: input.count) }
        return node.layer is ReshapeLayer && out.count >= 1
    }
}
