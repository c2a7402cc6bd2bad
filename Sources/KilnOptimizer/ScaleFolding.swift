import KilnIR

/// Folds a multiplication (or division) by a one-element constant into the matMul that reads the result as A or
/// B: `(s · A) · B = s · (A · B)`, so the scale becomes part of the matMul's alpha and costs no pass over memory.
/// Attention exports scale Q and K this way before `Q · Kᵀ`, or scale the product after it: a scaled matMul
/// result folds the same way when the product has no C input or activation. The scaled value must be read only
/// by that matMul, and both must be floating point.
///
/// A multiplication or division by a constant that varies at most along the channels (`[C, 1, 1]` after a
/// convolution, `[N]` after a 2-D product) folds into the weights of the convolution or constant-weight product
/// that produces the scaled value, as a batch normalization does: exporters that split a normalization into a
/// per-channel multiply and add (Caffe2's Inception) leave this, and the add then becomes the bias.
public struct ScaleFolding: Pass {
    public let name = "scale-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in
            try fold(at: index, &graph) || foldIntoWeights(at: index, &graph, context)
        }
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

    private func foldIntoWeights(at index: Int, _ graph: inout Graph, _ context: PassContext) throws -> Bool {
        let node = graph.nodes[index]
        guard let binary = node.layer as? BinaryLayer, binary.op == .mul || binary.op == .div,
            node.inputs.count == 2, node.outputs.count == 1,
            let outType = graph.type(of: node.outputs[0])?.tensorType, isFusibleFloat(outType.dtype),
            let shape = outType.concreteShape, shape.count >= 2
        else { return false }
        // The constant is the divisor of a division, either factor of a product.
        let side = graph.initializers[node.inputs[1]] != nil ? 1 : binary.op == .mul ? 0 : 1
        guard let constant = graph.initializers[node.inputs[side]],
            let values = channelValues(constant, rank: shape.count, channels: shape[1])
        else { return false }
        let factors = binary.op == .mul ? values : values.map { 1 / $0 }
        let operand = node.inputs[1 - side]
        guard factors.allSatisfy({ $0.isFinite }), graph.type(of: operand)?.tensorType == outType,
            let p = graph.nodes.firstIndex(where: { $0.outputs.first == operand }),
            graph.nodes[p].layer is ConvolutionLayer || graph.nodes[p].layer is MatMulLayer
        else { return false }
        guard graph.soleConsumer(of: operand, graph.useCounts) == index else {
            context.rejected?(
                graph.nodes[p].name,
                "\(node.name) (per-channel scale) not folded into the weights: '\(operand)' is read elsewhere too")
            return false
        }
        var fused = graph.nodes[p]
        fused.outputs = node.outputs
        let zeros = [Double](repeating: 0, count: factors.count)
        let folded: Bool
        if let conv = fused.layer as? ConvolutionLayer, conv.epilogue.isEmpty, !conv.channelsLast {
            folded = try BatchNormFolding.foldConvolution(&fused, scale: factors, shift: zeros, &graph)
        } else if let mm = fused.layer as? MatMulLayer, mm.epilogue.isEmpty, shape.count == 2 {
            folded = try BatchNormFolding.foldMatMul(&fused, mm, scale: factors, shift: zeros, &graph)
        } else {
            folded = false
        }
        guard folded else {
            context.rejected?(
                graph.nodes[p].name,
                "\(node.name) (per-channel scale) not folded into the weights: the layer has an epilogue, stores "
                    + "its output channels-last, is no 2-D product, or its weights are not constants")
            return false
        }
        fused.name = fusedName(graph.nodes[p], node)
        graph.fuse(producer: p, consumer: index, into: fused, removing: operand)
        return true
    }
}
