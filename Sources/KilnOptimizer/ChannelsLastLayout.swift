import KilnIR

/// Moves chains of 2-D convolutions, pooling and the pointwise layers between them to channels-last storage
/// (`[N, H, W, C]`, weights `[M, kh, kw, C/group]`), the layout tensor-core convolutions read directly; the
/// channels-first layout makes cuDNN reformat every input and output in 16 bits. Values keep their names
/// and channels-first shapes wherever a layer outside the region (or the caller) reads them: one transpose
/// goes in where a value enters a region and one where it leaves, weights are permuted once here.
///
/// A region is a connected set of layers that can run channels-last: convolutions the device runs so
/// (`runsChannelsLast`), pooling fed by the region, concats of values all from the region, static slices of
/// one (their axes move with the layout), and pointwise
/// layers whose activation inputs all come from the region with the output's shape (constant operands,
/// broadcast per channel or scalar, are permuted to match). Regions with fewer than `minimumConvolutions`
/// convolutions stay as they are: the transposes around a single convolution (a vision transformer's patch
/// embedding) cost more than they save. A chained int8 convolution whose input comes from outside the region
/// reads it channels-first where the device says its kernel loads it so (`readsChannelsFirst`: a stem over an
/// image's few channels), and no transpose goes in front of it.
/// Runs after the precision passes; the builder applies it when the device asks for it.
public struct ChannelsLastLayout: Sendable {
    /// What `--no-fuse` and `--passes` call it.
    public static let name = "channels-last"
    /// Whether the device runs this node's channels-last form fast, given its (channels-first) input's type.
    public var runsChannelsLast: @Sendable (Node, TensorType) -> Bool
    /// Whether the device's channels-last kernel for this chained int8 convolution (its input's and weights'
    /// channels-first types) reads the input channels-first.
    public var readsChannelsFirst: @Sendable (Node, TensorType, TensorType) -> Bool
    public var minimumConvolutions: Int

    public init(
        minimumConvolutions: Int = 2, runsChannelsLast: @escaping @Sendable (Node, TensorType) -> Bool,
        readsChannelsFirst: @escaping @Sendable (Node, TensorType, TensorType) -> Bool = { _, _, _ in false }
    ) {
        self.minimumConvolutions = minimumConvolutions
        self.runsChannelsLast = runsChannelsLast
        self.readsChannelsFirst = readsChannelsFirst
    }

    /// Rewrites `graph` (types inferred) and returns how many layers now run channels-last.
    @discardableResult
    public func apply(_ graph: inout Graph) throws -> Int {
        let members = regions(graph)
        guard !members.isEmpty else { return 0 }
        var rewriter = LayoutRewriter(graph: graph, members: members, readsChannelsFirst: readsChannelsFirst)
        for (index, node) in graph.nodes.enumerated() { try rewriter.append(node, member: members.contains(index)) }
        graph = try rewriter.finish()
        Self.sinkUpperClips(&graph)
        return members.count
    }

    /// A channels-last convolution ending in ReLU6 (clip to 0...h) whose only reader is a channels-last
    /// depthwise convolution keeps just the ReLU, which the libraries apply in their epilogues, and the reader
    /// clamps its input at h as it loads it (`ConvolutionLayer.inputMax`): MobileNet's expansion layers then
    /// write their large outputs once instead of a second pass for the clip.
    static func sinkUpperClips(_ graph: inout Graph) {
        let uses = graph.useCounts
        for i in graph.nodes.indices {
            guard var conv = graph.nodes[i].layer as? ConvolutionLayer, conv.channelsLast,
                case .clip(let low?, let high?)? = conv.epilogue.activation, low == 0, high > 0,
                let out = graph.nodes[i].outputs.first, uses[out] == 1,
                let j = graph.nodes.firstIndex(where: { $0.inputs.first == out }),
                var reader = graph.nodes[j].layer as? ConvolutionLayer, reader.channelsLast, reader.inputMax == nil,
                graph.nodes[j].inputs.count > 1, let w = graph.type(of: graph.nodes[j].inputs[1])?.tensorType?.shape,
                w.count == 4, w[3] == .value(1), w[0] == .value(reader.parameters.group)
            else { continue }
            conv.epilogue.activation = .relu
            reader.inputMax = high
            graph.nodes[i].layer = conv
            graph.nodes[j].layer = reader
        }
    }

    /// The indices of the nodes that go channels-last: every region with enough convolutions.
    func regions(_ graph: Graph) -> Set<Int> {
        var producer: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for output in node.outputs { producer[output] = i } }
        var candidate: Set<Int> = []
        // Union-find over candidate nodes: a value from one candidate read by another joins them.
        var parent: [Int: Int] = [:]
        func root(_ i: Int) -> Int {
            var i = i
            while let p = parent[i], p != i { i = p }
            return i
        }
        for (i, node) in graph.nodes.enumerated()
        where joins(node, graph, fromRegion: { producer[$0].map(candidate.contains) ?? false }) {
            candidate.insert(i)
            parent[i] = i
            for input in node.inputs { if let p = producer[input], candidate.contains(p) { parent[root(p)] = root(i) } }
        }
        var convolutions: [Int: Int] = [:]
        for i in candidate {
            // A chained int8 convolution (`Int8Chaining`) has kernels only channels-last: any region holding one
            // goes.
            if (graph.nodes[i].layer as? QuantizedConvolutionLayer)?.writesQuantized == true {
                convolutions[root(i), default: 0] += minimumConvolutions
            } else if graph.nodes[i].layer is ConvolutionLayer || graph.nodes[i].layer is QuantizedConvolutionLayer {
                convolutions[root(i), default: 0] += 1
            }
        }
        return candidate.filter { convolutions[root($0), default: 0] >= minimumConvolutions }
    }

    /// Whether `node` can join a region; `fromRegion` tells whether a value is produced inside one.
    func joins(_ node: Node, _ graph: Graph, fromRegion: (String) -> Bool) -> Bool {
        func shape(_ value: String) -> [Dim]? { graph.type(of: value)?.tensorType?.shape }
        guard let output = node.outputs.first, let outShape = shape(output), outShape.count == 4,
            let input = node.inputs.first.flatMap({ graph.type(of: $0)?.tensorType })
        else { return false }
        switch node.layer {
        case is ConvolutionLayer, is QuantizedConvolutionLayer:
            let placed =
                (node.layer as? ConvolutionLayer)?.channelsLast
                ?? (node.layer as? QuantizedConvolutionLayer)?.channelsLast
            return placed == false && node.inputs.count >= 2 && shape(node.inputs[0])?.count == 4
                && shape(node.inputs[1])?.count == 4 && runsChannelsLast(node, input)
        case let pool as PoolLayer:
            return !pool.channelsLast && !pool.outputsIndices && fromRegion(node.inputs[0])
                && runsChannelsLast(node, input)
        case is ConcatLayer:
            // Every input from the region, so joining adds no transpose (Inception's branches, DenseNet's
            // growing feature maps).
            return node.outputs.count == 1
                && node.inputs.allSatisfy { !$0.isEmpty && fromRegion($0) && shape($0)?.count == 4 }
        case let slice as SliceLayer:
            // A static slice of a value from the region (the channels of horizontally fused convolutions).
            return slice.isStatic && slice.starts != nil && node.inputs.count == 1 && node.outputs.count == 1
                && fromRegion(node.inputs[0])
        default:
            guard Self.isPointwise(node.layer) || Self.isPerTensorQuantization(node, graph), node.outputs.count == 1
            else { return false }
            var fed = false
            for input in node.inputs where !input.isEmpty {
                if let constant = graph.initializers[input] {
                    guard constant.rank <= 4 else { return false }
                    continue
                }
                guard fromRegion(input), shape(input) == outShape else { return false }
                fed = true
            }
            return fed
        }
    }

    /// A quantize or dequantize layer with one scale (and zero point) for the whole tensor: pointwise too.
    static func isPerTensorQuantization(_ node: Node, _ graph: Graph) -> Bool {
        let blockSize = (node.layer as? QuantizeLayer)?.blockSize ?? (node.layer as? DequantizeLayer)?.blockSize
        guard blockSize == 0, node.inputs.count >= 2 else { return false }
        return node.inputs.dropFirst().allSatisfy { $0.isEmpty || graph.initializers[$0]?.count == 1 }
    }

    static func isPointwise(_ layer: any Layer) -> Bool {
        layer is UnaryLayer || layer is BinaryLayer || layer is SelectLayer || layer is FusedPointwiseLayer
            || layer is ClipLayer || layer is CastLayer
    }
}

/// Rebuilds the node list: members read channels-last copies (`value::nhwc`) and write them; a transpose goes
/// in where a value enters the region and where one leaves it (under the original name).
private struct LayoutRewriter {
    var graph: Graph
    let members: Set<Int>
    let readsChannelsFirst: @Sendable (Node, TensorType, TensorType) -> Bool
    var nodes: [Node] = []
    /// Values that exist channels-last now, by their channels-first name.
    var channelsLast: Set<String> = []
    /// Values produced inside the region that something outside reads (or the caller).
    let leaving: Set<String>

    init(
        graph: Graph, members: Set<Int>, readsChannelsFirst: @escaping @Sendable (Node, TensorType, TensorType) -> Bool
    ) {
        self.graph = graph
        self.members = members
        self.readsChannelsFirst = readsChannelsFirst
        var outside: Set<String> = Set(graph.outputs.map(\.name))
        for (i, node) in graph.nodes.enumerated() where !members.contains(i) { outside.formUnion(node.inputs) }
        for node in graph.nodes { for sub in node.layer.subgraphs { outside.formUnion(sub.capturedValues) } }
        leaving = outside
    }

    static func renamed(_ value: String) -> String { value + "::nhwc" }

    /// Channels-first axis a (negative counts from the end) of a rank-4 value is channels-last axis
    /// `fromFirst.firstIndex(of: a)`.
    static func channelsLastAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + 4 : axis
        return ChannelsLast.fromFirst(rank: 4).firstIndex(of: a) ?? a
    }

    /// `value` channels-last: the region's own copy, a permuted constant (a rank-4 one such as a convolution's
    /// weights, or a per-channel operand broadcast from the right), or a transpose made once.
    mutating func channelsLastValue(_ value: String) throws -> String {
        let name = Self.renamed(value)
        if channelsLast.contains(value) { return name }
        channelsLast.insert(value)
        if let constant = graph.initializers[value] {
            if constant.rank == 4 {
                graph.initializers[name] = try constant.permuted(ChannelsLast.fromFirst(rank: 4))
            } else if constant.count == 1 {
                graph.initializers[name] = constant
            } else {
                // Broadcast from the right: [C, 1, 1] or [1, 1] become rank 4 first.
                let padded = try constant.reshaped(Array(repeating: 1, count: 4 - constant.rank) + constant.shape)
                graph.initializers[name] = try padded.permuted(ChannelsLast.fromFirst(rank: 4))
            }
            return name
        }
        nodes.append(
            Node(
                name: name + ".transpose", layer: TransposeLayer(perm: ChannelsLast.fromFirst(rank: 4)),
                inputs: [value], outputs: [name]))
        return name
    }

    mutating func append(_ node: Node, member: Bool) throws {
        guard member else {
            nodes.append(node)
            return
        }
        var node = node
        switch node.layer {
        case var conv as ConvolutionLayer:
            conv.channelsLast = true
            node.layer = conv
            node.inputs[0] = try channelsLastValue(node.inputs[0])
            node.inputs[1] = try channelsLastValue(node.inputs[1])
            if conv.epilogue.residual, node.inputs.count > 3 { node.inputs[3] = try channelsLastValue(node.inputs[3]) }
        case var conv as QuantizedConvolutionLayer:
            conv.channelsLast = true
            if conv.writesQuantized, !channelsLast.contains(node.inputs[0]),
                let x = graph.type(of: node.inputs[0])?.tensorType, let w = graph.type(of: node.inputs[1])?.tensorType
            {
                conv.channelsFirstInput = readsChannelsFirst(node, x, w)
            }
            node.layer = conv
            for i in conv.channelsLastInputs where i < node.inputs.count && (i < 4 || conv.epilogue.residual) {
                node.inputs[i] = try channelsLastValue(node.inputs[i])
            }
        case var pool as PoolLayer:
            pool.channelsLast = true
            node.layer = pool
            node.inputs[0] = try channelsLastValue(node.inputs[0])
        case var concat as ConcatLayer:
            concat.axis = Self.channelsLastAxis(concat.axis)
            node.layer = concat
            for i in node.inputs.indices { node.inputs[i] = try channelsLastValue(node.inputs[i]) }
        case var slice as SliceLayer:
            slice.axes = (slice.axes ?? Array((slice.starts ?? []).indices)).map(Self.channelsLastAxis)
            node.layer = slice
            node.inputs[0] = try channelsLastValue(node.inputs[0])
        default:
            for i in node.inputs.indices where !node.inputs[i].isEmpty {
                node.inputs[i] = try channelsLastValue(node.inputs[i])
            }
        }
        let outputs = node.outputs
        node.outputs = outputs.map { $0.isEmpty ? $0 : Self.renamed($0) }
        nodes.append(node)
        for output in outputs where !output.isEmpty {
            channelsLast.insert(output)
            guard leaving.contains(output) else { continue }
            nodes.append(
                Node(
                    name: output + ".transpose", layer: TransposeLayer(perm: ChannelsLast.toFirst(rank: 4)),
                    inputs: [Self.renamed(output)], outputs: [output]))
        }
    }

    mutating func finish() throws -> Graph {
        graph.nodes = nodes
        try graph.inferTypes()
        _ = try DeadCodeElimination().run(&graph, PassContext(evaluate: { _, _ in [] }))
        return graph
    }
}
