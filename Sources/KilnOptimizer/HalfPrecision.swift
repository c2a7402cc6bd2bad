import KilnIR

/// Mixed precision: every layer the device runs in a 16-bit float (float16 or bfloat16) computes on values
/// stored in it, weights included; the rest keep float32, each with the reason. Casts are inserted where the
/// two meet, at the graph's inputs and outputs (which keep float32 unless `ioType` says otherwise), and
/// constants are converted once here rather than cast at run time. Kernels accumulate in float32 (products,
/// reductions, softmax and normalization statistics); what this pass decides is only what is stored.
///
/// In float16 a layer whose result may leave its ±65504 range keeps float32: exponentials and powers as
/// standalone layers or as the last step of a fused chain, and sums (sum, sum of squares, L1, product
/// reductions); so does a layer reading a constant beyond that range (an attention mask of -3.4e38, say).
/// bfloat16 has float32's range, so only the device's kernels decide there.
public struct HalfPrecision: Sendable {
    /// float16 or bfloat16.
    public var dtype: DType
    /// The dtype of the graph's float inputs and outputs: float32 (the default) or `dtype`.
    public var ioType: DType
    /// Whether the device runs this node with 16-bit float operands.
    public var runsInHalf: @Sendable (Node) -> Bool
    /// Node names that keep float32 whatever the device offers (the accuracy guard's or the user's choice).
    public var keepFloat: Set<String>

    public init(
        dtype: DType, ioType: DType = .float32, keepFloat: Set<String> = [],
        runsInHalf: @escaping @Sendable (Node) -> Bool
    ) {
        self.dtype = dtype
        self.ioType = ioType
        self.keepFloat = keepFloat
        self.runsInHalf = runsInHalf
    }

    /// What the pass did with one layer that computes on floats.
    public struct Decision: Sendable, Equatable {
        public var node: String
        /// `dtype`, or float32.
        public var precision: DType
        /// Why it kept float32; nil for a 16-bit layer.
        public var reason: String?
    }

    /// Rewrites `graph` (types inferred) and returns one decision per layer with float operands, in order.
    @discardableResult
    public func apply(_ graph: inout Graph) throws -> [Decision] {
        guard dtype == .float16 || dtype == .bfloat16 else {
            throw KilnError.invalidArgument("mixed precision takes float16 or bfloat16, not \(dtype.onnxName)")
        }
        guard ioType == .float32 || ioType == dtype else {
            throw KilnError.invalidArgument("engine inputs and outputs may be float32 or \(dtype.onnxName)")
        }
        var rewriter = Rewriter(graph: graph, half: dtype)
        if ioType == dtype {
            for i in graph.inputs.indices where rewriter.dtype(of: graph.inputs[i].name) == .float32 {
                rewriter.graph.inputs[i].type = graph.inputs[i].type.map { Self.retyped($0, dtype) }
                rewriter.current[graph.inputs[i].name] = dtype
            }
        }
        var decisions: [Decision] = []
        for node in graph.nodes {
            // A layer computes on floats when a value it reads or writes at run time is a float (float32, or 16
            // bits from a producer already converted); an int8 layer's float constants (scales, bias) alone do
            // not make it one.
            let floats = (node.inputs + node.outputs).contains {
                graph.initializers[$0] == nil && [.float32, dtype].contains(rewriter.dtype(of: $0))
            }
            // An identity passes its input on in whatever float it arrives (casting it could only lose bits), and
            // shape and size layers read no values.
            guard floats, !(node.layer is IdentityLayer || node.layer is ShapeOfLayer || node.layer is SizeLayer) else {
                try rewriter.append(node, as: nil)
                continue
            }
            let reason = keepReason(node, graph)
            decisions.append(Decision(node: node.name, precision: reason == nil ? dtype : .float32, reason: reason))
            try rewriter.append(node, as: reason == nil ? dtype : .float32)
        }
        rewriter.finishOutputs(ioType: ioType)
        graph = rewriter.graph
        try graph.inferTypes()
        _ = try DeadCodeElimination().run(&graph, PassContext(evaluate: { _, _ in [] }))
        return decisions
    }

    /// Why `node` keeps float32, or nil when it runs in 16 bits.
    func keepReason(_ node: Node, _ graph: Graph) -> String? {
        if keepFloat.contains(node.name) { return "kept in float32 by request" }
        guard node.layer.subgraphs.isEmpty, runsInHalf(node) else {
            return "the device has no \(dtype.onnxName) kernel for \(node.kind)"
        }
        guard dtype == .float16 else { return nil }
        if let op = Self.overflowingOp(node.layer) { return "\(op) may overflow float16; kept in float32" }
        for input in node.inputs {
            guard let constant = graph.initializers[input], constant.dtype == .float32 else { continue }
            let outOfRange = constant.withUnsafeBuffer(as: Float.self) {
                $0.contains { $0.isFinite && abs($0) > 65504 }
            }
            if outOfRange { return "constant '\(input)' holds values beyond float16's range (±65504)" }
        }
        return nil
    }

    /// The operation of `layer` whose result may exceed float16's range, if any.
    static func overflowingOp(_ layer: any Layer) -> String? {
        switch layer {
        case let unary as UnaryLayer:
            return [.exp, .sinh, .cosh].contains(unary.op) ? "\(unary.op)" : nil
        case let binary as BinaryLayer:
            return binary.op == .pow ? "pow" : nil
        case let reduce as ReduceLayer:
            return [.sum, .sumSquare, .l1, .prod].contains(reduce.op) ? "reduce \(reduce.op)" : nil
        case let fused as FusedPointwiseLayer:
            return fused.steps.last.flatMap { overflowingOp($0.layer) }
        default:
            return nil
        }
    }

    /// The inputs of `layer` that take the layer's precision (16-bit when `half`), where not all of them do:
    /// quantization scales, zero points and an int8 layer's bias keep their dtype (its arithmetic is float32
    /// whatever the data's), and a 16-bit quantize reads a float32 input as it is.
    static func convertedSlots(_ layer: any Layer, half: Bool) -> [Int]? {
        switch layer {
        case is QuantizeLayer: half ? [] : [0]
        case is DequantizeLayer: []
        case is QuantizedConvolutionLayer, is QuantizedMatMulLayer: [0, 4]
        default: nil
        }
    }

    /// `layer` writing its float result in `half`: a cast to float32 casts to it, a dequantize produces it, and
    /// a quantize keeps dividing in float32 as it did before its input was narrowed.
    static func writing(_ half: DType, _ layer: any Layer) -> any Layer {
        switch layer {
        case var cast as CastLayer where cast.to == .float32:
            cast.to = half
            return cast
        case var dequantize as DequantizeLayer:
            dequantize.outputType = half
            return dequantize
        case var quantize as QuantizeLayer where quantize.precision == nil:
            quantize.precision = .float32
            return quantize
        default:
            return layer
        }
    }

    static func retyped(_ type: ValueType, _ dtype: DType) -> ValueType {
        guard case .tensor(let t) = type else { return type }
        return .tensor(TensorType(dtype, t.shape))
    }
}

/// Rebuilds the node list with each layer's float operands in the precision chosen for it.
private struct Rewriter {
    var graph: Graph
    let half: DType
    /// The dtype each float value has now (after conversion of its producer).
    var current: [String: DType] = [:]
    /// The converted copies made so far (`value::f16`, `value::f32`, ...), one per value and dtype.
    var converted: Set<String> = []
    /// Types of the values this rewrite created or retyped.
    var types: [String: ValueType] = [:]
    var nodes: [Node] = []

    func type(of value: String) -> ValueType? {
        types[value] ?? graph.initializers[value].map { .tensor($0.type) } ?? graph.type(of: value)
    }

    init(graph: Graph, half: DType) {
        self.graph = graph
        self.half = half
    }

    func dtype(of value: String) -> DType? {
        guard !value.isEmpty else { return nil }
        if let d = current[value] { return d }
        if let t = graph.initializers[value] { return t.dtype }
        if let input = graph.inputs.first(where: { $0.name == value }) { return input.type?.tensorType?.dtype }
        return graph.type(of: value)?.tensorType?.dtype
    }

    static func suffix(_ dtype: DType) -> String { dtype == .float32 ? "f32" : dtype == .float16 ? "f16" : "bf16" }

    /// `value` as `target`: itself, a converted constant, or the output of a cast layer (one per value and dtype).
    mutating func value(_ value: String, as target: DType) throws -> String {
        guard let d = dtype(of: value), d != target, d == .float32 || d == half else { return value }
        let key = "\(value)::\(Self.suffix(target))"
        if converted.contains(key) { return key }
        if let constant = graph.initializers[value] {
            graph.initializers[key] = try constant.cast(to: target)
        } else {
            nodes.append(Node(name: key + ".cast", layer: CastLayer(to: target), inputs: [value], outputs: [key]))
        }
        types[key] = type(of: value).map { HalfPrecision.retyped($0, target) }
        current[key] = target
        converted.insert(key)
        return key
    }

    /// Appends `node` with its float inputs converted to `precision` (nil: a layer without float operands).
    mutating func append(_ node: Node, as precision: DType?) throws {
        var node = node
        if let precision {
            let slots = HalfPrecision.convertedSlots(node.layer, half: precision == half) ?? Array(node.inputs.indices)
            for i in slots where i < node.inputs.count { node.inputs[i] = try value(node.inputs[i], as: precision) }
            if precision == half { node.layer = HalfPrecision.writing(half, node.layer) }
        }
        let inputs = node.inputs.map { name -> LayerInput in
            guard !name.isEmpty else { return .absent }
            let type = dtype(of: name).flatMap { d in self.type(of: name).map { HalfPrecision.retyped($0, d) } }
            return LayerInput(type: type, constant: graph.initializers[name])
        }
        let inferred = try withErrorContext("16-bit rewrite of '\(node.name)' (\(node.kind))") {
            try node.layer.inferTypes(inputs)
        }
        for (i, output) in node.outputs.enumerated() where !output.isEmpty && i < inferred.count {
            if let t = inferred[i] {
                types[output] = t
                if let d = t.tensorType?.dtype { current[output] = d }
            }
        }
        nodes.append(node)
    }

    /// Graph outputs keep their names and `ioType` (when float): a 16-bit result is cast back to float32 under
    /// the output's name, its producer writing a renamed value.
    mutating func finishOutputs(ioType: DType) {
        graph.nodes = nodes
        for i in graph.outputs.indices {
            let name = graph.outputs[i].name
            guard let d = dtype(of: name), d == .float32 || d == half else { continue }
            if ioType == half {
                if d == .float32, renameProducer(of: name, to: name + "::f32") {
                    graph.nodes.append(
                        Node(
                            name: name + ".cast", layer: CastLayer(to: half), inputs: [name + "::f32"], outputs: [name])
                    )
                }
                graph.outputs[i].type = graph.outputs[i].type.map { HalfPrecision.retyped($0, half) }
            } else if d == half {
                let renamed = name + "::" + Self.suffix(half)
                guard renameProducer(of: name, to: renamed) else { continue }
                graph.nodes.append(
                    Node(name: name + ".cast", layer: CastLayer(to: .float32), inputs: [renamed], outputs: [name]))
            }
        }
    }

    /// Makes the node producing `name` write `renamed`, and every reader read it; false when no node
    /// produces it (a graph input passed through).
    mutating func renameProducer(of name: String, to renamed: String) -> Bool {
        guard let index = graph.nodes.firstIndex(where: { $0.outputs.contains(name) }) else { return false }
        graph.replaceUses(of: name, with: renamed)
        graph.nodes[index].outputs = graph.nodes[index].outputs.map { $0 == name ? renamed : $0 }
        return true
    }
}
