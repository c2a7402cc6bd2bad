import KilnIR

/// Rewrites an inference batch normalization that no convolution or matMul absorbed (one after a
/// concatenation or a pooling, as in pre-activation networks such as DenseNet) as `x * s + t` with per-channel
/// constants `s = scale / sqrt(var + eps)` and `t = bias - mean * s`, shaped `[C, 1, ...]` to broadcast over
/// the channel axis. Pointwise fusion then runs it in one loop with the activation that follows, where the
/// normalization was a layer and a pass over memory of its own.
///
/// Runs after batch-norm folding and the epilogues (a normalization a producer can absorb is absorbed first),
/// just before pointwise fusion.
public struct BatchNormAffine: Pass {
    public let name = "batchnorm-affine"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in try rewrite(at: index, &graph) }
    }

    private func rewrite(at index: Int, _ graph: inout Graph) throws -> Bool {
        let bn = graph.nodes[index]
        guard bn.kind == NormalizationLayer.kind, let (scale, shift) = BatchNormFolding.affine(bn, graph),
            let type = graph.type(of: bn.inputs[0])?.tensorType, isFusibleFloat(type.dtype),
            let rank = type.shape?.count, rank >= 2, type.shape?[1].value.map({ $0 == scale.count }) ?? true
        else { return false }
        let shape = [scale.count] + [Int](repeating: 1, count: rank - 2)
        let output = bn.outputs[0]
        let s = graph.addConstant(
            try Tensor(shape: shape, scalars: scale).cast(to: type.dtype), named: output + ".scale")
        let t = graph.addConstant(
            try Tensor(shape: shape, scalars: shift).cast(to: type.dtype), named: output + ".shift")
        let scaled = graph.freshName(output + ".scaled")
        graph.nodes.replaceSubrange(
            index...index,
            with: [
                Node(name: bn.name, layer: BinaryLayer(.mul), inputs: [bn.inputs[0], s], outputs: [scaled]),
                Node(name: bn.name + ".shift", layer: BinaryLayer(.add), inputs: [scaled, t], outputs: [output]),
            ])
        graph.valueTypes[scaled] = .tensor(type)
        return true
    }
}
