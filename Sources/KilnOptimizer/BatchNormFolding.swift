import KilnIR

/// Folds an inference batch normalization into the convolution (or 2-D matMul with constant weights) that
/// feeds it: `y = (conv(x) - mean) * s + bias` with `s = scale / sqrt(var + eps)` is a convolution whose
/// output channel m has weights `W[m] * s[m]` and bias `(b[m] - mean[m]) * s[m] + bias[m]`. The normalization's
/// parameters and the producer's weights must be constants, and the producer's output used only by it.
public struct BatchNormFolding: Pass {
    public let name = "batchnorm-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in try fold(at: index, &graph) }
    }

    /// The per-channel affine map of the batch normalization at `index`, when its parameters are constants.
    static func affine(_ node: Node, _ graph: Graph) -> (scale: [Double], shift: [Double])? {
        guard let bn = node.layer as? NormalizationLayer, case .batch(training: false, _) = bn.method,
            node.inputs.count == 5, node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy(\.isEmpty)
        else { return nil }
        let params = node.inputs[1...].map { graph.initializers[$0] }
        guard params.allSatisfy({ $0?.dtype.isFloatingPoint == true }) else { return nil }
        let v = params.compactMap { $0.flatMap { try? $0.doubleValues() } }
        guard v.count == 4, Set(v.map(\.count)).count == 1 else { return nil }
        let epsilon = Double(bn.epsilon)
        let scale = v[0].indices.map { v[0][$0] / (v[3][$0] + epsilon).squareRoot() }
        let shift = v[0].indices.map { v[1][$0] - v[2][$0] * scale[$0] }
        return (scale, shift)
    }

    private func fold(at index: Int, _ graph: inout Graph) throws -> Bool {
        let bn = graph.nodes[index]
        guard bn.kind == NormalizationLayer.kind, let (scale, shift) = Self.affine(bn, graph) else { return false }
        let x = bn.inputs[0]
        let uses = graph.useCounts
        guard uses[x] == 1, !graph.outputs.contains(where: { $0.name == x }),
            let p = graph.nodes.firstIndex(where: { $0.outputs.count == 1 && $0.outputs[0] == x })
        else { return false }
        var producer = graph.nodes[p]
        guard isFusibleFloat(graph.type(of: x)?.tensorType?.dtype) else { return false }
        // The folded constants are named after the value the fused layer now produces.
        producer.outputs = bn.outputs.prefix(1).map { $0 }
        let folded: Bool
        if let conv = producer.layer as? ConvolutionLayer, conv.epilogue.isEmpty {
            folded = try Self.foldConvolution(&producer, scale: scale, shift: shift, &graph)
        } else if let mm = producer.layer as? MatMulLayer, mm.epilogue.isEmpty {
            folded = try Self.foldMatMul(&producer, mm, scale: scale, shift: shift, &graph)
        } else {
            folded = false
        }
        guard folded else { return false }
        producer.name = fusedName(producer, bn)
        graph.fuse(producer: p, consumer: index, into: producer, removing: x)
        return true
    }

    /// W `[M, C/group, k...]` scaled per output channel; the bias created when absent. The new constants are
    /// named after `node`'s output.
    static func foldConvolution(
        _ node: inout Node, scale: [Double], shift: [Double], _ graph: inout Graph
    ) throws -> Bool {
        guard node.inputs.count >= 2, let w = graph.initializers[node.inputs[1]], w.rank >= 3,
            w.shape[0] == scale.count
        else { return false }
        let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
        var b = [Double](repeating: 0, count: scale.count)
        if let bias {
            guard let t = graph.initializers[bias], t.count == scale.count else { return false }
            b = try t.doubleValues()
        }
        let perChannel = w.count / max(scale.count, 1)
        var weights = try w.doubleValues()
        for i in weights.indices { weights[i] *= scale[i / perChannel] }
        let newBias = b.indices.map { b[$0] * scale[$0] + shift[$0] }
        let wName = graph.addConstant(
            try Tensor(shape: w.shape, scalars: weights).cast(to: w.dtype), named: node.outputs[0] + ".weight")
        let bName = graph.addConstant(
            try Tensor(shape: [scale.count], scalars: newBias).cast(to: w.dtype), named: node.outputs[0] + ".bias")
        node.inputs = [node.inputs[0], wName, bName]
        return true
    }

    /// A 2-D product `alpha * A x op(B) + beta * C` whose columns are the channels: op(B)'s columns scale, and C
    /// (absent, or constant per column) becomes `beta * C * s + shift` with beta 1.
    static func foldMatMul(
        _ node: inout Node, _ layer: MatMulLayer, scale: [Double], shift: [Double], _ graph: inout Graph
    ) throws -> Bool {
        let n = scale.count
        guard node.inputs.count >= 2, let b = graph.initializers[node.inputs[1]], b.rank == 2,
            graph.type(of: node.inputs[0])?.tensorType?.rank == 2
        else { return false }
        let (rows, cols) = (b.shape[0], b.shape[1])
        guard (layer.transposeB ? rows : cols) == n else { return false }
        var c = [Double](repeating: 0, count: n)
        if node.inputs.count > 2, !node.inputs[2].isEmpty, layer.beta != 0 {
            guard let t = graph.initializers[node.inputs[2]], t.count == n || t.count == 1,
                t.shape.dropLast().allSatisfy({ $0 == 1 })
            else { return false }
            let values = try t.doubleValues()
            c = (0..<n).map { Double(layer.beta) * values[values.count == 1 ? 0 : $0] }
        }
        var weights = try b.doubleValues()
        for i in weights.indices { weights[i] *= scale[layer.transposeB ? i / cols : i % cols] }
        let bName = graph.addConstant(
            try Tensor(shape: b.shape, scalars: weights).cast(to: b.dtype), named: node.outputs[0] + ".weight")
        let cName = graph.addConstant(
            try Tensor(shape: [n], scalars: (0..<n).map { c[$0] * scale[$0] + shift[$0] }).cast(to: b.dtype),
            named: node.outputs[0] + ".bias")
        var folded = layer
        folded.beta = 1
        node.layer = folded
        node.inputs = [node.inputs[0], bName, cName]
        return true
    }
}
