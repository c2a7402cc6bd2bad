import KilnIR

/// Lets a channels-last 1×1 convolution read a channels-first input where it meets one, instead of the
/// transpose `ChannelsLastLayout` puts in front of it: where a region is entered after a layer that stays
/// channels-first (ResNet's stride-1 3×3 convolutions on a GPU, whose output feeds the next 1×1), the
/// convolution becomes a product that reads each image `[C, H·W]` as its transposed A:
///
///     y[N, H, W, M] = reshape(matMul(reshape(x, [N, C, H·W])ᵀ, W[M, C]ᵀ) + bias + residual)
///
/// The product keeps the convolution's bias, residual and activation; the reshapes cost nothing. Only where
/// the device has a kernel that reads A so as fast as in rows (`Device.takesTransposedInput`); a transpose that
/// something else still reads stays. Runs after `ChannelsLastLayout`; the builder applies it when the device
/// asks for it.
public struct TransposedInput: Sendable {
    /// What `--no-fuse` and `--passes` call it.
    public static let name = "transposed-input"
    /// Whether the device runs this channels-last 1×1 convolution, given its channels-first input's type and
    /// its output channels, as a product reading the input transposed.
    public var wants: @Sendable (Node, TensorType, Int) -> Bool

    public init(wants: @escaping @Sendable (Node, TensorType, Int) -> Bool) {
        self.wants = wants
    }

    /// Rewrites `graph` (types inferred) and returns how many convolutions now read a channels-first input.
    @discardableResult
    public func apply(_ graph: inout Graph) throws -> Int {
        var producer: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for output in node.outputs { producer[output] = i } }
        var nodes: [Node] = []
        var count = 0
        for node in graph.nodes {
            guard let (x, type, weights) = candidate(node, graph, producer: producer) else {
                nodes.append(node)
                continue
            }
            nodes += try product(for: node, reading: x, type, weights: weights, &graph)
            count += 1
        }
        guard count > 0 else { return 0 }
        graph.nodes = nodes
        try graph.inferTypes()
        _ = try DeadCodeElimination().run(&graph, PassContext(evaluate: { _, _ in [] }))
        return count
    }

    /// The channels-first value a channels-last 1×1 convolution's input was transposed from, its type and the
    /// convolution's constant weights `[M, 1, 1, C]`; nil where the convolution is not one to rewrite.
    func candidate(_ node: Node, _ graph: Graph, producer: [String: Int]) -> (String, TensorType, Tensor)? {
        guard let conv = node.layer as? ConvolutionLayer, conv.channelsLast, conv.inputMax == nil,
            conv.parameters.group == 1, conv.parameters.strides.allSatisfy({ $0 == 1 }),
            conv.parameters.pads.allSatisfy({ $0 == 0 }), node.inputs.count >= 2,
            let weights = graph.initializers[node.inputs[1]], weights.rank == 4, weights.shape[1] == 1,
            weights.shape[2] == 1, let p = producer[node.inputs[0]],
            let transpose = graph.nodes[p].layer as? TransposeLayer,
            transpose.perm == ChannelsLast.fromFirst(rank: 4), let x = graph.nodes[p].inputs.first,
            let type = graph.type(of: x)?.tensorType, let shape = type.shape, shape.count == 4,
            shape[1].value == weights.shape[3], shape[2].value != nil, shape[3].value != nil,
            wants(node, type, weights.shape[0])
        else { return nil }
        return (x, type, weights)
    }

    /// The reshapes and the product that replace `node`, reading `x` (`[N, C, H, W]`).
    func product(
        for node: Node, reading x: String, _ type: TensorType, weights: Tensor, _ graph: inout Graph
    ) throws -> [Node] {
        guard let conv = node.layer as? ConvolutionLayer, let shape = type.shape, let c = shape[1].value,
            let h = shape[2].value, let w = shape[3].value
        else { return [node] }
        let m = weights.shape[0]
        let name = node.name
        func reshape(_ input: String, _ output: String, _ dims: [Int]) -> Node {
            Node(
                name: output, layer: ReshapeLayer(.reshape(shape: dims, allowZero: false)), inputs: [input],
                outputs: [output])
        }
        let rows = node.inputs[1] + "::rows"
        graph.initializers[rows] = try weights.reshaped([m, c])
        var nodes = [reshape(x, name + "::images", [0, c, h * w])]
        var inputs = [name + "::images", rows] + (node.inputs.count > 2 ? [node.inputs[2]] : [])
        if conv.epilogue.residual, node.inputs.count > 3 {
            nodes.append(reshape(node.inputs[3], name + "::residual", [0, h * w, m]))
            inputs = [inputs[0], inputs[1], inputs.count > 2 ? inputs[2] : "", name + "::residual"]
        }
        let matMul = MatMulLayer(transposeA: true, transposeB: true, epilogue: conv.epilogue)
        nodes.append(Node(name: name, layer: matMul, inputs: inputs, outputs: [name + "::pixels"]))
        nodes.append(reshape(name + "::pixels", node.outputs[0], [0, h, w, m]))
        return nodes
    }
}
