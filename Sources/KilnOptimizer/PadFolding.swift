import KilnIR

/// Folds a zero padding of the spatial axes into the convolution that reads it: `Pad(x, zeros) → Conv` is a
/// convolution of `x` whose pads are its own plus the Pad's, so the padded copy is never written. TensorFlow
/// exports and some PyTorch models (explicit `F.pad` before a stride-2 convolution) pad this way. The Pad must be
/// constant-mode with value 0 (or none), constant non-negative pads, none on the batch and channel axes; the
/// convolution must have explicit or no padding. A Pad that other layers still read stays for them.
public struct PadFolding: Pass {
    public let name = "pad-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in try fold(at: index, &graph, context) }
    }

    private func fold(at index: Int, _ graph: inout Graph, _ context: PassContext) throws -> Bool {
        let node = graph.nodes[index]
        guard var conv = node.layer as? ConvolutionLayer, !conv.channelsLast, node.inputs.count >= 2,
            conv.parameters.autoPad == .explicit || conv.parameters.autoPad == .valid,
            let p = PatternView(graph).producers[node.inputs[0]], graph.nodes[p].kind == PadLayer.kind
        else { return false }
        let pad = graph.nodes[p]
        let spatial: [(Int, Int)]
        switch zeroSpatialPads(pad, graph) {
        case .success(let pads): spatial = pads
        case .failure(let reason):
            context.rejected?(node.name, "\(pad.name) not folded: \(reason.reason)")
            return false
        }
        let rank = spatial.count
        let own =
            conv.parameters.autoPad == .valid || conv.parameters.pads.isEmpty
            ? [Int](repeating: 0, count: 2 * rank) : conv.parameters.pads
        guard own.count == 2 * rank else { return false }
        conv.parameters.pads =
            (0..<rank).map { own[$0] + spatial[$0].0 } + (0..<rank).map { own[rank + $0] + spatial[$0].1 }
        conv.parameters.autoPad = .explicit
        var folded = node
        folded.layer = conv
        folded.inputs[0] = pad.inputs[0]
        folded.name = fusedName(pad, node)
        if graph.useCounts[pad.outputs[0]] == 1, !graph.outputs.contains(where: { $0.name == pad.outputs[0] }) {
            graph.fuse(producer: p, consumer: index, into: folded, removing: pad.outputs[0])
        } else {
            graph.nodes[index] = folded
        }
        return true
    }

    /// The (begin, end) zero pads of each spatial axis of a Pad over NC... data, or why there are none.
    private func zeroSpatialPads(_ pad: Node, _ graph: Graph) -> Result<[(Int, Int)], Rejection> {
        guard let layer = pad.layer as? PadLayer, layer.mode == .constant else {
            return .failure(Rejection("only constant-mode pads fold"))
        }
        func present(_ i: Int) -> Bool { i < pad.inputs.count && !pad.inputs[i].isEmpty }
        func constant(_ i: Int) -> Tensor? { present(i) ? graph.initializers[pad.inputs[i]] : nil }
        var value: Double? = layer.value ?? 0
        if layer.value == nil, present(2) { value = try? constant(2)?.doubleValues().first }
        guard value == 0 else { return .failure(Rejection("the pad value is not a constant zero")) }
        guard let pads = layer.pads ?? (try? constant(1)?.intValues()) else {
            return .failure(Rejection("the pads are not constant"))
        }
        var axes = layer.axes
        if axes == nil, present(3) {
            axes = try? constant(3)?.intValues()
            if axes == nil { return .failure(Rejection("the axes are not constant")) }
        }
        guard let rank = graph.type(of: pad.inputs[0])?.tensorType?.rank, rank >= 3,
            let perAxis = try? PadLayer.perAxis(pads: pads, axes: axes, rank: rank)
        else { return .failure(Rejection("the padded value's rank is unknown or below 3")) }
        guard perAxis.allSatisfy({ $0.0 >= 0 && $0.1 >= 0 }) else {
            return .failure(Rejection("negative pads crop"))
        }
        guard perAxis.prefix(2).allSatisfy({ $0 == (0, 0) }) else {
            return .failure(Rejection("it pads the batch or channel axis"))
        }
        return .success(Array(perAxis.dropFirst(2)))
    }
}

/// Why a Pad does not fold, for `kiln inspect --verbose`.
private struct Rejection: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
