import KilnIR

/// Rewrites an inference batch normalization that no convolution or matMul absorbed (one after a
/// concatenation or a pooling, as in pre-activation networks such as DenseNet) as `x * s + t` with per-channel
/// constants `s = scale / sqrt(var + eps)` and `t = bias - mean * s`, shaped `[C, 1, ...]` to broadcast over
/// the channel axis. Per-channel multiplies and adds of constants right after it join those two constants.
/// Pointwise fusion then runs it in one loop with the activation that follows, where the normalization was a
/// layer and a pass over memory of its own.
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
        guard bn.kind == NormalizationLayer.kind, var (scale, shift) = BatchNormFolding.affine(bn, graph),
            let type = graph.type(of: bn.inputs[0])?.tensorType, isFusibleFloat(type.dtype),
            let rank = type.shape?.count, rank >= 2, type.shape?[1].value.map({ $0 == scale.count }) ?? true
        else { return false }
        // Per-channel multiplies, divides, adds and subtractions of constants that come next (each the only
        // reader of the one before) join the map: Caffe2's DenseNet follows each normalization with a multiply
        // and an add.
        var output = bn.outputs[0]
        var shiftName = bn.name + ".shift"
        var absorbed: [Int] = []
        let uses = graph.useCounts
        while let c = graph.soleConsumer(of: output, uses), graph.type(of: graph.nodes[c].outputs[0]) == .tensor(type),
            let step = Self.channelStep(graph.nodes[c], reading: output, rank: rank, channels: scale.count, graph)
        {
            for i in scale.indices {
                (scale[i], shift[i]) = (scale[i] * step.scale[i], shift[i] * step.scale[i] + step.shift[i])
            }
            graph.valueTypes[output] = nil
            (output, shiftName) = (graph.nodes[c].outputs[0], "\(shiftName) + \(graph.nodes[c].name)")
            absorbed.append(c)
        }
        for c in absorbed.sorted(by: >) { graph.nodes.remove(at: c) }
        let shape = [scale.count] + [Int](repeating: 1, count: rank - 2)
        let s = graph.addConstant(
            try Tensor(shape: shape, scalars: scale).cast(to: type.dtype), named: output + ".scale")
        let t = graph.addConstant(
            try Tensor(shape: shape, scalars: shift).cast(to: type.dtype), named: output + ".shift")
        let scaled = graph.freshName(output + ".scaled")
        graph.nodes.replaceSubrange(
            index...index,
            with: [
                Node(name: bn.name, layer: BinaryLayer(.mul), inputs: [bn.inputs[0], s], outputs: [scaled]),
                Node(name: shiftName, layer: BinaryLayer(.add), inputs: [scaled, t], outputs: [output]),
            ])
        graph.valueTypes[scaled] = .tensor(type)
        return true
    }

    /// `node` as `x * scale + shift` per channel of `x` (the value `reading`), when it multiplies, divides, adds
    /// or subtracts a constant that varies at most along the channels (and divides by no zero).
    private static func channelStep(
        _ node: Node, reading x: String, rank: Int, channels: Int, _ graph: Graph
    ) -> (scale: [Double], shift: [Double])? {
        guard let binary = node.layer as? BinaryLayer, node.inputs.count == 2, node.outputs.count == 1,
            node.inputs.filter({ $0 == x }).count == 1
        else { return nil }
        let side = node.inputs[0] == x ? 1 : 0
        // Only a product or a sum may have its constant first.
        guard side == 1 || binary.op == .mul || binary.op == .add, let constant = graph.initializers[node.inputs[side]],
            let k = channelValues(constant, rank: rank, channels: channels)
        else { return nil }
        let ones = [Double](repeating: 1, count: channels)
        let zeros = [Double](repeating: 0, count: channels)
        let step: (scale: [Double], shift: [Double])
        switch binary.op {
        case .mul: step = (k, zeros)
        case .div: step = (k.map { 1 / $0 }, zeros)
        case .add: step = (ones, k)
        case .sub: step = (ones, k.map { -$0 })
        default: return nil
        }
        return step.scale.allSatisfy(\.isFinite) && step.shift.allSatisfy(\.isFinite) ? step : nil
    }
}
