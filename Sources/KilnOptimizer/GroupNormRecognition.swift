import KilnIR

/// Recognizes group normalization as exporters before ONNX's GroupNormalization write it, and replaces it by one
/// normalization layer (one pass over each group on the CPU and CUDA backends):
///
/// `x [N, C, ...] → Reshape [N, G, ...] → normalize over every axis after G → Reshape to x's shape [· γ] [+ β]`
///
/// where the middle normalization is an InstanceNormalization (PyTorch's export: scale 1 and bias 0 per group)
/// or a layer normalization over the trailing axes without an affine map (what `normalization-recognition` makes
/// of a ReduceMean/Sub/Pow/Sqrt/Div chain), and γ, β are per-channel constants (`[C, 1, ...]`) or one value.
/// Every intermediate value must be read only inside the pattern.
public struct GroupNormRecognition: Pass {
    public let name = "groupnorm-recognition"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in try recognize(at: index, &graph) }
    }

    /// Starts at the middle normalization at `index`.
    private func recognize(at index: Int, _ graph: inout Graph) throws -> Bool {
        let view = PatternView(graph)
        let norm = graph.nodes[index]
        guard let layer = norm.layer as? NormalizationLayer, norm.outputs.dropFirst().allSatisfy(\.isEmpty),
            let groupedDims = graph.type(of: norm.inputs[0])?.tensorType?.shape, groupedDims.count >= 3,
            normalizesAfterGroups(layer, rank: groupedDims.count), hasUnitAffine(norm, view),
            let r1 = view.internalProducer(of: norm.inputs[0]), isReshape(graph.nodes[r1]),
            let x = graph.nodes[r1].inputs.first, let xType = graph.type(of: x)?.tensorType,
            let shape = xType.shape, shape.count >= 3, shape[0] == groupedDims[0],
            let r2 = view.soleConsumer(of: norm.outputs[0]), isReshape(graph.nodes[r2]),
            graph.type(of: graph.nodes[r2].outputs[0])?.tensorType == xType
        else { return false }
        // The grouped view [N, G, ...] must hold exactly each group's channels and pixels.
        let grouped = groupedDims.dropFirst().compactMap(\.value)
        let perImage = shape.dropFirst().compactMap(\.value)
        guard grouped.count == groupedDims.count - 1, perImage.count == shape.count - 1 else { return false }
        let (groups, channels) = (grouped[0], perImage[0])
        guard groups > 0, channels % groups == 0, grouped.reduce(1, *) == perImage.reduce(1, *) else { return false }
        var nodes: Set<Int> = [r1, index, r2]
        var root = r2
        /// The per-channel constant the root's sole consumer combines it with by `op`, making that the root.
        func absorb(_ op: BinaryOp) -> Tensor? {
            let value = graph.nodes[root].outputs[0]
            guard let next = view.soleConsumer(of: value), let binary = graph.nodes[next].layer as? BinaryLayer,
                binary.op == op, graph.nodes[next].inputs.count == 2,
                graph.nodes[next].inputs.filter({ $0 == value }).count == 1,
                let other = graph.nodes[next].inputs.first(where: { $0 != value }),
                let t = graph.initializers[other], t.dtype == xType.dtype,
                let row = perChannel(t, channels: channels, rank: shape.count)
            else { return nil }
            root = next
            nodes.insert(next)
            return row
        }
        let scale = absorb(.mul)
        let bias = absorb(.add)
        let output = graph.nodes[root].outputs[0]
        func constant(_ values: Tensor?, fill: Double, suffix: String) throws -> String {
            let tensor = try values ?? Tensor(shape: [channels], scalars: [Double](repeating: fill, count: channels))
            return graph.addConstant(try tensor.cast(to: xType.dtype), named: output + suffix)
        }
        let inputs = [x, try constant(scale, fill: 1, suffix: ".scale"), try constant(bias, fill: 0, suffix: ".bias")]
        graph.replace(
            covering: nodes, root: root,
            with: NormalizationLayer(method: .group(groups: groups, perGroupAffine: false), epsilon: layer.epsilon),
            inputs: inputs)
        return true
    }

    private func isReshape(_ node: Node) -> Bool {
        guard let reshape = node.layer as? ReshapeLayer, case .reshape = reshape.op else { return false }
        return node.outputs.count == 1
    }

    /// Instance normalization of `[N, G, ...]`, or layer normalization from axis 2 on.
    private func normalizesAfterGroups(_ layer: NormalizationLayer, rank: Int) -> Bool {
        switch layer.method {
        case .instance: return true
        case .layer(let axis): return axis == 2 || axis == 2 - rank
        default: return false
        }
    }

    /// Whether the normalization's scale is all ones and its bias all zeros (or absent).
    private func hasUnitAffine(_ node: Node, _ view: PatternView) -> Bool {
        func all(_ i: Int, _ value: Double, optional: Bool) -> Bool {
            guard i < node.inputs.count, !node.inputs[i].isEmpty else { return optional }
            guard let values = try? view.graph.initializers[node.inputs[i]]?.doubleValues() else { return false }
            return values.allSatisfy { $0 == value }
        }
        return all(1, 1, optional: false) && all(2, 0, optional: true)
    }

    /// A constant of one value, or of one value per channel shaped `[C, 1, ...]` (leading ones allowed) against
    /// an output of `rank`: the `[C]` row.
    private func perChannel(_ t: Tensor, channels: Int, rank: Int) -> Tensor? {
        guard let values = try? t.doubleValues() else { return nil }
        if t.count == 1 { return Tensor(shape: [channels], scalars: [Double](repeating: values[0], count: channels)) }
        let dims = Array(t.shape.drop { $0 == 1 })
        guard t.shape.count <= rank, dims.first == channels, dims.count == rank - 1,
            dims.dropFirst().allSatisfy({ $0 == 1 })
        else { return nil }
        return Tensor(shape: [channels], scalars: values)
    }
}
