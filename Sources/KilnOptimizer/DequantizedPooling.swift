import KilnIR

/// Folds a per-tensor dequantize into the global average pool that is its only reader (`PoolLayer.dequantizing`):
/// the pool reads the quantized values (one byte an element instead of the float copy the dequantize wrote) and
/// averages the floats they stand for. Where an int8 chain ends in a network's global pool (ResNet's last block),
/// the dequantize's pass over the last feature map goes. Channels-last pools only: the form the devices' kernels
/// take (a chain's values are channels-last). Runs after the layout passes; the builder applies it.
public struct DequantizedPooling: Sendable {
    /// What `--no-fuse` and `--passes` call it.
    public static let name = "dequantized-pooling"

    public init() {}

    /// Rewrites `graph` (types inferred) and returns how many pools now read quantized values.
    @discardableResult
    public func apply(_ graph: inout Graph) throws -> Int {
        let uses = graph.useCounts
        var producer: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for output in node.outputs { producer[output] = i } }
        // Graph outputs and values a subgraph captures are read besides the pool.
        let readElsewhere = Set(graph.outputs.map(\.name))
            .union(graph.nodes.flatMap { $0.layer.subgraphs.flatMap(\.capturedValues) })
        var folded: Set<Int> = []
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard var pool = node.layer as? PoolLayer, pool.window == nil, case .average = pool.op,
                pool.channelsLast, !pool.outputsIndices, pool.dequantizing == nil, let value = node.inputs.first,
                uses[value] == 1, !readElsewhere.contains(value), let d = producer[value],
                let dequantize = graph.nodes[d].layer as? DequantizeLayer, dequantize.blockSize == 0,
                let quantization = Self.quantization(graph.nodes[d], graph),
                let float = graph.type(of: value)?.tensorType?.dtype
            else { continue }
            pool.dequantizing = PoolLayer.Dequantizing(input: quantization, output: float)
            graph.nodes[index].layer = pool
            graph.nodes[index].inputs[0] = graph.nodes[d].inputs[0]
            folded.insert(d)
        }
        guard !folded.isEmpty else { return 0 }
        graph.nodes = graph.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
        try graph.inferTypes()
        return folded.count
    }

    /// The quantization of a dequantize with one constant scale (and zero point) over int8 or uint8 values, read
    /// as `QDQFolding` reads a Q/DQ pair's.
    static func quantization(_ node: Node, _ graph: Graph) -> ActivationQuantization? {
        guard let type = graph.type(of: node.inputs[0])?.tensorType?.dtype, [.int8, .uint8].contains(type),
            let scale = QDQFolding.scalar(node.inputs, 1, graph), let zero = QDQFolding.zeroPoint(node.inputs, graph)
        else { return nil }
        let quantization = ActivationQuantization(scale: Float(scale), zeroPoint: zero, type: type)
        return (try? quantization.validate()) == nil ? nil : quantization
    }
}
