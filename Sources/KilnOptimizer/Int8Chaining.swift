import KilnIR

/// Keeps activations in int8 between the int8 convolutions a device runs that way: each such convolution
/// (`chains`) reads its input, and its residual, as int8 and writes its output as int8, so a chain of them
/// moves one byte per activation where `convolution.int8` alone reads and writes four (float32) and quantizes
/// its input itself.
///
/// A value is stored in int8 with the quantization every int8 layer reading it uses (they agree: calibration
/// gives one range per value), or, where no int8 layer reads it as its input (a residual, the last
/// convolution's output), with the calibrated range `ranges` holds for it. A `quantize` layer makes the int8
/// copy of a value no chained convolution produces (where a chain starts), a `dequantize` layer the float one
/// of a chained output that something else reads (where a chain ends, graph outputs and `floatValues`
/// included): both keep the value's name for its float form and call the int8 form `value::int8`.
///
/// A windowed max pool reading a chained value runs on its int8 form (`int8Pools`): quantization is monotonic,
/// so pooling int8 values stored with the pool output's quantization gives exactly the quantized float pool,
/// and the value it reads is stored with that quantization (ResNet's stem writes what its pool reads).
///
/// Numerically a chained convolution computes what the float-in, float-out one followed by its readers'
/// quantization computes, except that a residual is added as its int8 values (the quantization error of the
/// value it adds, as TensorRT's int8 residual adds have) and a value read by float layers too passes through
/// int8 on the way (the layers after a chain see the output's quantization). Symmetric int8 only (zero
/// point 0), the kernels' arithmetic.
public struct Int8Chaining: Sendable {
    /// What `--no-fuse` and `--passes` call it.
    public static let name = "int8-chaining"
    /// Calibrated `amax` per value name (the int8 layers' inputs and outputs).
    public var ranges: [String: Float]
    /// Values that keep a float form under their name besides the graph's outputs (the accuracy guard's).
    public var floatValues: Set<String>
    /// Whether the device runs this 2-D `convolution.int8` (input float, channels-first, typed `input`, weights
    /// typed `weights`) chained.
    public var chains: @Sendable (Node, TensorType, TensorType) -> Bool

    public init(
        ranges: [String: Float], floatValues: Set<String> = [],
        chains: @escaping @Sendable (Node, TensorType, TensorType) -> Bool
    ) {
        self.ranges = ranges
        self.floatValues = floatValues
        self.chains = chains
    }

    /// The name of `value`'s int8 form.
    public static func int8Name(_ value: String) -> String { value + "::int8" }

    /// Rewrites `graph` (types inferred); returns the names of the chained convolutions.
    @discardableResult
    public func apply(_ graph: inout Graph) throws -> [String] {
        var readers: [String: [(node: Int, slot: Int)]] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for (slot, input) in node.inputs.enumerated() where !input.isEmpty {
                readers[input, default: []].append((i, slot))
            }
        }
        let quantizations = storage(graph, readers)
        let chained = Set(graph.nodes.indices.filter { chainable($0, graph, quantizations) })
        guard !chained.isEmpty else { return [] }
        let pools = int8Pools(graph, chained, quantizations)
        /// Whether node `reader` reads input `slot` in int8.
        func readsInt8(_ reader: (node: Int, slot: Int)) -> Bool {
            (chained.contains(reader.node) && (reader.slot == 0 || reader.slot == 4))
                || (pools.contains(reader.node) && reader.slot == 0)
        }
        let keepFloat = floatValues.union(graph.outputs.map(\.name))
        let captured = Set(graph.nodes.flatMap { $0.layer.subgraphs.flatMap(\.capturedValues) })

        var nodes: [Node] = []
        var stored: Set<String> = []
        var scales: [String: String] = [:]
        func scale(_ value: String, _ q: ActivationQuantization) -> String {
            if let name = scales[value] { return name }
            let name = graph.addConstant(Tensor(shape: [], scalars: [q.scale]), named: Self.int8Name(value) + ".scale")
            scales[value] = name
            return name
        }
        /// The int8 form of `value`, quantized here unless a chained convolution writes it.
        func int8(_ value: String) -> String {
            let name = Self.int8Name(value)
            guard !stored.contains(value), let q = quantizations[value] else { return name }
            stored.insert(value)
            nodes.append(
                Node(
                    name: name + ".quantize", layer: QuantizeLayer(outputType: .int8),
                    inputs: [value, scale(value, q)], outputs: [name]))
            return name
        }
        for (i, node) in graph.nodes.enumerated() {
            guard chained.contains(i) || pools.contains(i), let output = node.outputs.first,
                let q = quantizations[output]
            else {
                nodes.append(node)
                continue
            }
            var node = node
            node.inputs[0] = int8(node.inputs[0])
            if var conv = node.layer as? QuantizedConvolutionLayer {
                if conv.epilogue.residual {
                    conv.residualQuantization = quantizations[node.inputs[4]]
                    node.inputs[4] = int8(node.inputs[4])
                }
                conv.output = q
                conv.writesQuantized = true
                node.layer = conv
            }
            node.outputs[0] = Self.int8Name(output)
            stored.insert(output)
            nodes.append(node)
            let floatReaders = (readers[output] ?? []).contains { !readsInt8($0) }
            if floatReaders || keepFloat.contains(output) || captured.contains(output) {
                nodes.append(
                    Node(
                        name: node.outputs[0] + ".dequantize", layer: DequantizeLayer(),
                        inputs: [node.outputs[0], scale(output, q)], outputs: [output]))
            }
        }
        let names = chained.sorted().map { graph.nodes[$0].name }
        graph.nodes = nodes
        try graph.inferTypes()
        return names
    }

    /// How each value would be stored in int8: the input quantization of the int8 layers reading it, for a max
    /// pool the storage of its output (nil when they disagree or it is not symmetric int8), else its calibrated
    /// range over 127.
    func storage(_ graph: Graph, _ readers: [String: [(node: Int, slot: Int)]]) -> [String: ActivationQuantization] {
        var values = Set(ranges.keys)
        for node in graph.nodes where node.layer is QuantizedConvolutionLayer { values.formUnion(node.inputs) }
        // Pools are read through their outputs: their inputs are settled after them, in reverse order.
        var pending = values.subtracting([""])
        var result: [String: ActivationQuantization] = [:]
        func settle(_ value: String) {
            var direct: [ActivationQuantization] = []
            var pooled: [ActivationQuantization] = []
            for reader in readers[value] ?? [] where reader.slot == 0 {
                let node = graph.nodes[reader.node]
                if Self.isInt8Poolable(node) {
                    // A pool whose output has no int8 storage reads the float form.
                    if let q = node.outputs.first.flatMap({ result[$0] }) { pooled.append(q) }
                } else if let q = (node.layer as? QuantizedConvolutionLayer)?.input
                    ?? (node.layer as? QuantizedMatMulLayer)?.input
                {
                    direct.append(q)
                }
            }
            func agreed(_ qs: [ActivationQuantization]) -> ActivationQuantization? {
                guard let first = qs.first, qs.allSatisfy({ $0 == first }), first.type == .int8, first.zeroPoint == 0
                else { return nil }
                return first
            }
            // Pools that disagree with the layers reading the value directly read its float form.
            if let q = agreed(direct + pooled) ?? agreed(direct) {
                result[value] = q
            } else if direct.isEmpty, let amax = ranges[value], amax.isFinite, (amax / 127).isNormal {
                result[value] = ActivationQuantization(scale: amax / 127)
            }
        }
        for node in graph.nodes.reversed() {
            for value in node.outputs where pending.remove(value) != nil { settle(value) }
        }
        for value in pending { settle(value) }
        return result
    }

    /// A max pool that can run on int8 values: windowed, no indices output.
    static func isInt8Poolable(_ node: Node) -> Bool {
        guard let pool = node.layer as? PoolLayer, pool.op == .max, pool.window != nil, !pool.outputsIndices else {
            return false
        }
        return node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy(\.isEmpty)
    }

    /// The max pools that read a value a chained convolution (or another such pool) writes, stored with the
    /// same quantization as their output: they run on the int8 form.
    func int8Pools(_ graph: Graph, _ chained: Set<Int>, _ quantizations: [String: ActivationQuantization]) -> Set<Int> {
        var int8Values = Set(chained.compactMap { graph.nodes[$0].outputs.first })
        var pools: Set<Int> = []
        for (i, node) in graph.nodes.enumerated() where Self.isInt8Poolable(node) {
            guard let input = node.inputs.first, int8Values.contains(input), let output = node.outputs.first,
                let q = quantizations[output], quantizations[input] == q
            else { continue }
            pools.insert(i)
            int8Values.insert(output)
        }
        return pools
    }

    /// Whether node `i` can run chained: a float-in, float-out 2-D `convolution.int8` with constant weights,
    /// scales and bias, whose input, residual and output all have an int8 storage (its input's the one it
    /// quantizes with, its output's the requantization it may already have), and that the device chains.
    func chainable(_ i: Int, _ graph: Graph, _ quantizations: [String: ActivationQuantization]) -> Bool {
        let node = graph.nodes[i]
        guard let conv = node.layer as? QuantizedConvolutionLayer, !conv.writesQuantized, !conv.channelsLast,
            conv.residualQuantization == nil, node.outputs.count == 1, let output = node.outputs.first,
            let q = quantizations[output], conv.output == nil || conv.output == q,
            quantizations[node.inputs[0]] == conv.input,
            let x = graph.type(of: node.inputs[0])?.tensorType, x.dtype == .float32,
            let w = graph.type(of: node.inputs[1])?.tensorType, w.shape?.count == 4
        else { return false }
        let constants = [1, 2, 3].allSatisfy { k in
            k >= node.inputs.count || node.inputs[k].isEmpty || graph.initializers[node.inputs[k]] != nil
        }
        guard constants, node.inputs.count > 2, !node.inputs[2].isEmpty else { return false }
        if conv.epilogue.residual {
            guard node.inputs.count > 4, quantizations[node.inputs[4]] != nil else { return false }
        }
        return chains(node, x, w)
    }
}
