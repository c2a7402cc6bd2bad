import KilnIR

/// Folds the pointwise work after a convolution or matMul into its epilogue, so the result is written once:
/// a constant per-channel bias add (added into a constant bias the layer has, or as its bias), a residual add
/// of a tensor of the output's shape (a matMul's C input, or its input 3 when C already holds a bias), and an
/// activation (relu, clip/relu6, leaky relu, sigmoid, tanh, GELU, SiLU `x * sigmoid(x)`), in that order. Each
/// step needs the layer's output to be read only by the fused node, and an epilogue stage that comes later not
/// to be filled in yet.
public struct EpilogueFusion: Pass {
    public let name = "epilogue-fusion"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in try fuse(at: index, &graph, context) }
    }

    /// Tries to fuse the node at `index` with the consumer of its output. The fused node replaces both.
    private func fuse(at index: Int, _ graph: inout Graph, _ context: PassContext) throws -> Bool {
        let producer = graph.nodes[index]
        guard producer.kind == ConvolutionLayer.kind || producer.kind == MatMulLayer.kind,
            producer.outputs.count == 1, let outType = graph.type(of: producer.outputs[0])?.tensorType,
            isFusibleFloat(outType.dtype)
        else { return false }
        let out = producer.outputs[0]
        let uses = graph.useCounts
        if let silu = try fuseSiLU(index, out, uses, &graph) { return silu }
        let epilogue = (producer.layer as? ConvolutionLayer)?.epilogue ?? (producer.layer as? MatMulLayer)?.epilogue
        // After an activation nothing more can join the epilogue, so there is nothing to explain.
        let open = epilogue?.activation == nil
        guard let c = graph.soleConsumer(of: out, uses) else {
            let candidates = graph.nodes.filter { $0.inputs.contains(out) && isCandidate($0, graph) }.map(\.name)
            if open, !candidates.isEmpty {
                let why =
                    graph.outputs.contains { $0.name == out }
                    ? "its output '\(out)' is a graph output"
                    : "its output '\(out)' is read by \(uses[out] ?? 0) layers"
                context.rejected?(
                    producer.name, "\(candidates.joined(separator: ", ")) not fused into its epilogue: \(why)")
            }
            return false
        }
        let consumer = graph.nodes[c]
        guard consumer.outputs.count == 1, graph.type(of: consumer.outputs[0])?.tensorType == outType,
            var fused = try rewrite(producer, consumer, outType, &graph)
        else {
            if open, isCandidate(consumer, graph) {
                context.rejected?(
                    producer.name,
                    "\(consumer.name) (\(consumer.kind)) not fused: the epilogue (\(epilogue?.description ?? "")) has that "
                        + "stage or a later one filled, or the operand's shape or dtype does not fit")
            }
            return false
        }
        fused.name = fusedName(producer, consumer)
        fused.outputs = consumer.outputs
        graph.fuse(producer: index, consumer: c, into: fused, removing: out)
        return true
    }

    /// The producer with the consumer's work in its epilogue, or nil when it does not fit.
    private func rewrite(_ producer: Node, _ consumer: Node, _ type: TensorType, _ graph: inout Graph) throws -> Node? {
        let out = producer.outputs[0]
        if let activation = activation(of: consumer, graph), consumer.inputs.first == out {
            return withActivation(producer, activation)
        }
        guard isAdd(consumer), consumer.inputs.count == 2, consumer.inputs.filter({ $0 == out }).count == 1
        else { return nil }
        let other = consumer.inputs[0] == out ? consumer.inputs[1] : consumer.inputs[0]
        var node = producer
        if var conv = producer.layer as? ConvolutionLayer {
            guard !conv.epilogue.residual, conv.epilogue.activation == nil else { return nil }
            let hasBias = node.inputs.count > 2 && !node.inputs[2].isEmpty
            if !conv.channelsLast, let add = try channelBias(graph.initializers[other], type),
                let bias = try bias(adding: add, to: hasBias ? node.inputs[2] : nil, graph)
            {
                node.inputs = Array(node.inputs.prefix(2)) + [graph.addConstant(bias, named: other + ".bias")]
                return node
            }
            guard graph.type(of: other)?.tensorType == type else { return nil }
            conv.epilogue.residual = true
            node.layer = conv
            node.inputs = Array(node.inputs.prefix(2)) + [hasBias ? node.inputs[2] : "", other]
            return node
        }
        // matMul: a bias or residual becomes C, which the kernel adds before the activation; once C holds a
        // bias, a residual of the output's type becomes input 3.
        guard var mm = producer.layer as? MatMulLayer, mm.epilogue.isEmpty else { return nil }
        if node.inputs.count >= 3, !node.inputs[2].isEmpty {
            guard graph.type(of: other)?.tensorType == type else { return nil }
            mm.epilogue.residual = true
            node.layer = mm
            node.inputs = Array(node.inputs.prefix(3)) + [other]
            return node
        }
        guard
            let otherType = graph.type(of: other)?.tensorType, otherType.dtype == type.dtype,
            let otherShape = otherType.shape, let shape = type.shape,
            (try? Broadcast.dims(shape, otherShape)) == shape
        else { return nil }
        mm.beta = 1
        node.layer = mm
        node.inputs = Array(node.inputs.prefix(2)) + [other]
        return node
    }

    /// A layer the epilogue could take: an activation it implements or an add.
    private func isCandidate(_ node: Node, _ graph: Graph) -> Bool {
        activation(of: node, graph) != nil || isAdd(node)
    }

    /// A binary add, or a two-input sum (ONNX Sum, as Caffe2-exported ResNets write their residual adds).
    private func isAdd(_ node: Node) -> Bool {
        if let binary = node.layer as? BinaryLayer { return binary.op == .add }
        if let variadic = node.layer as? VariadicLayer { return variadic.op == .sum }
        return false
    }

    /// A constant `[M]` from an add operand that broadcasts along the output's channel axis 1 only
    /// (`[M, 1, 1]`, `[1, M, 1, 1]`, or a scalar).
    private func channelBias(_ t: Tensor?, _ type: TensorType) throws -> Tensor? {
        guard let t, t.dtype == type.dtype, let shape = type.shape,
            let channels = shape.count >= 2 ? shape[1].value : nil,
            let values = channelValues(t, rank: shape.count, channels: channels)
        else { return nil }
        return try Tensor(shape: [channels], scalars: values).cast(to: t.dtype)
    }

    /// The layer's bias once `add` is added to it: `add` itself where it has none, the sum where its bias is a
    /// constant of the same type and size, nil otherwise.
    private func bias(adding add: Tensor, to current: String?, _ graph: Graph) throws -> Tensor? {
        guard let current else { return add }
        guard let existing = graph.initializers[current], existing.dtype == add.dtype, existing.count == add.count
        else { return nil }
        let sums = zip(try existing.doubleValues(), try add.doubleValues()).map { $0 + $1 }
        return try Tensor(shape: add.shape, scalars: sums).cast(to: add.dtype)
    }

    private func withActivation(_ producer: Node, _ activation: EpilogueActivation) -> Node? {
        var node = producer
        if var conv = node.layer as? ConvolutionLayer, conv.epilogue.activation == nil {
            conv.epilogue.activation = activation
            node.layer = conv
            return node
        }
        if var mm = node.layer as? MatMulLayer, mm.epilogue.activation == nil {
            mm.epilogue.activation = activation
            node.layer = mm
            return node
        }
        return nil
    }

    /// The epilogue form of a pointwise activation node, with constant bounds for clip.
    private func activation(of node: Node, _ graph: Graph) -> EpilogueActivation? {
        if let unary = node.layer as? UnaryLayer, node.inputs.count == 1 {
            switch unary.op {
            case .relu: return .relu
            case .leakyRelu(let alpha): return .leakyRelu(alpha: alpha)
            case .sigmoid: return .sigmoid
            case .tanh: return .tanh
            case .gelu(let tanh): return .gelu(tanh: tanh)
            default: return nil
            }
        }
        guard let clip = node.layer as? ClipLayer else { return nil }
        func bound(_ i: Int, _ attribute: Double?) -> Float?? {
            guard i < node.inputs.count, !node.inputs[i].isEmpty else { return .some(attribute.map(Float.init)) }
            guard let t = graph.initializers[node.inputs[i]], t.count == 1, let v = try? t.doubleValues() else {
                return .none
            }
            return .some(Float(v[0]))
        }
        guard let lo = bound(1, clip.min), let hi = bound(2, clip.max) else { return nil }
        return .clip(min: lo, max: hi)
    }

    /// `y = x * sigmoid(x)` on the producer's output x: the producer's only two readers are the sigmoid and the
    /// mul. Returns nil when the pattern is absent, so other fusions are tried.
    private func fuseSiLU(_ index: Int, _ out: String, _ uses: [String: Int], _ graph: inout Graph) throws -> Bool? {
        guard uses[out] == 2, !graph.outputs.contains(where: { $0.name == out }) else { return nil }
        let readers = graph.nodes.indices.filter { graph.nodes[$0].inputs.contains(out) }
        guard readers.count == 2 else { return nil }
        let (a, b) = (graph.nodes[readers[0]], graph.nodes[readers[1]])
        guard let sig = a.layer as? UnaryLayer, sig.op == .sigmoid, a.inputs == [out], a.outputs.count == 1,
            uses[a.outputs[0]] == 1, !graph.outputs.contains(where: { $0.name == a.outputs[0] }),
            let mul = b.layer as? BinaryLayer, mul.op == .mul, b.outputs.count == 1,
            Set(b.inputs) == [out, a.outputs[0]], b.inputs.count == 2,
            var fused = withActivation(graph.nodes[index], .silu)
        else { return nil }
        fused.name = "\(fusedName(graph.nodes[index], a)) + \(b.name)"
        fused.outputs = b.outputs
        graph.nodes[readers[1]] = fused
        graph.valueTypes[out] = nil
        graph.valueTypes[a.outputs[0]] = nil
        graph.nodes.remove(at: readers[0])
        graph.nodes.remove(at: index)
        return true
    }
}
