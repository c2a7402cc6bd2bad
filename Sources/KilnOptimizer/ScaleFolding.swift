import KilnIR

/// Folds a multiplication (or division) by a one-element constant into the matMul that reads the result as A or
/// B: `(s · A) · B = s · (A · B)`, so the scale becomes part of the matMul's alpha and costs no pass over memory.
/// Attention exports scale Q and K this way before `Q · Kᵀ`, or scale the product after it: a scaled matMul
/// result folds the same way when the product has no C input or activation. The scaled value must be read only
/// by that matMul, and both must be floating point.
public struct ScaleFolding: Pass {
    public let name = "scale-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        graph.rewriteEachNode { index, graph in fold(at: index, &graph) }
    }

    private func fold(at index: Int, _ graph: inout Graph) -> Bool {
        let node = graph.nodes[index]
        guard let binary = node.layer as? BinaryLayer, binary.op == .mul || binary.op == .div,
            node.inputs.count == 2, node.outputs.count == 1,
            let outType = graph.type(of: node.outputs[0])?.tensorType, isFusibleFloat(outType.dtype)
        else { return false }
        let view = PatternView(graph)
        guard let (constant, operand) = view.constantAndOther(node.inputs),
            binary.op == .mul || constant == node.inputs[1],
            graph.type(of: operand)?.tensorType == outType,
            let scale = try? graph.initializers[constant]?.doubleValues().first, scale.isFinite, scale != 0
        else { return false }
        let factor = Float(binary.op == .mul ? scale : 1 / scale)
        if let p = view.internalProducer(of: operand), var mm = graph.nodes[p].layer as? MatMulLayer,
            graph.nodes[p].inputs.count == 2, mm.epilogue.isEmpty
        {
            mm.alpha *= factor
            var product = graph.nodes[p]
            product.layer = mm
            product.outputs = node.outputs
            product.name = "\(product.name) + \(node.name)"
            graph.fuse(producer: p, consumer: index, into: product, removing: operand)
            return true
        }
        guard let c = view.soleConsumer(of: node.outputs[0]), var mm = graph.nodes[c].layer as? MatMulLayer else {
            return false
        }
        let reads = graph.nodes[c].inputs.indices.filter { graph.nodes[c].inputs[$0] == node.outputs[0] }
        guard reads.count == 1, reads[0] < 2 else { return false }
        mm.alpha *= factor
        var consumer = graph.nodes[c]
        consumer.layer = mm
        consumer.inputs[reads[0]] = operand
        consumer.name = "\(node.name) + \(consumer.name)"
        graph.fuse(producer: index, consumer: c, into: consumer, removing: node.outputs[0])
        return true
    }
}
