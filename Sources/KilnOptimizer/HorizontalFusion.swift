import KilnIR

/// Fuses sibling matMuls, or sibling convolutions, that read the same input with constant weights (the Q, K and
/// V projections of an attention block; an Inception block's 1x1 branches) into one wider layer: the weights,
/// and biases, are concatenated along the output axis (a product's columns, a convolution's output channels)
/// and each original result becomes a static slice of the wide one. One larger product runs closer to the
/// device's peak than several narrow ones and reads its input once; attention fusion reads the products'
/// slices in place, and a channel slice of a channels-first image at batch 1 is a contiguous block, which the
/// CUDA backend reads in place too.
///
/// Runs after epilogue fusion, so the biases and activations are already part of the layers.
public struct HorizontalFusion: Pass {
    public let name = "horizontal-fusion"
    public init() {}

    /// What must agree for layers to share one launch.
    private enum Signature: Hashable {
        case product(
            transposeB: Bool, alpha: Float, beta: Float, activation: EpilogueActivation?, hasBias: Bool, depth: Int,
            dtype: DType)
        case convolution(
            ConvolutionParameters, activation: EpilogueActivation?, hasBias: Bool, window: [Int], dtype: DType)

        var isProduct: Bool {
            if case .product = self { return true }
            return false
        }
    }

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var groups: [String: [Signature: [Int]]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            guard let (input, signature) = candidate(node, graph) else { continue }
            groups[input, default: [:]][signature, default: []].append(index)
        }
        report(groups, graph, context)
        let sets = groups.values.flatMap(\.values).filter { $0.count >= 2 }.sorted { $0[0] < $1[0] }
        guard !sets.isEmpty else { return false }
        // Each member becomes a slice in place; the wide layer goes just before the group's first member.
        var replaced: [Int: [Node]] = [:]
        for members in sets {
            for (index, nodes) in try fuse(members, &graph, context) { replaced[index] = nodes }
        }
        graph.nodes = graph.nodes.indices.flatMap { replaced[$0] ?? [graph.nodes[$0]] }
        return true
    }

    /// Tells `kiln inspect --verbose` about each layer left alone although a sibling of its kind reads the same
    /// input: their windows, strides, pads, epilogues or biases differ (ResNet's first 1x1 convolution, with a
    /// ReLU, beside its downsample, without one).
    private func report(_ groups: [String: [Signature: [Int]]], _ graph: Graph, _ context: PassContext) {
        guard let rejected = context.rejected else { return }
        for (input, bySignature) in groups {
            for (signature, members) in bySignature where members.count == 1 {
                let siblings = bySignature.filter { $0.key != signature && $0.key.isProduct == signature.isProduct }
                    .values.flatMap { $0 }.sorted().map { graph.nodes[$0].name }
                guard !siblings.isEmpty else { continue }
                rejected(
                    graph.nodes[members[0]].name,
                    "horizontal fusion: not joined with \(siblings.joined(separator: ", ")), which read '\(input)' too: "
                        + (signature.isProduct
                            ? "another shape, scaling, bias or activation" : "another window, bias or activation"))
            }
        }
    }

    /// The shared input and signature of a matMul or convolution that could join a group.
    private func candidate(_ node: Node, _ graph: Graph) -> (String, Signature)? {
        guard node.inputs.count == 2 || node.inputs.count == 3, node.outputs.count == 1,
            graph.initializers[node.inputs[0]] == nil, let weights = graph.initializers[node.inputs[1]],
            isFusibleFloat(weights.dtype)
        else { return nil }
        let outputs: Int
        let signature: Signature
        if let mm = node.layer as? MatMulLayer {
            guard !mm.transposeA, !mm.epilogue.residual, weights.rank == 2,
                let inputShape = graph.type(of: node.inputs[0])?.tensorType?.shape, inputShape.count >= 2
            else { return nil }
            outputs = mm.transposeB ? weights.shape[0] : weights.shape[1]
            signature = .product(
                transposeB: mm.transposeB, alpha: mm.alpha, beta: mm.beta, activation: mm.epilogue.activation,
                hasBias: node.inputs.count == 3, depth: mm.transposeB ? weights.shape[1] : weights.shape[0],
                dtype: weights.dtype)
        } else if let conv = node.layer as? ConvolutionLayer {
            // Channels-first, one group, no residual or input clamp: the output channels are the weights' rows.
            guard !conv.channelsLast, conv.inputMax == nil, !conv.epilogue.residual, conv.parameters.group == 1,
                weights.rank >= 3, graph.type(of: node.inputs[0])?.tensorType?.shape?.count == weights.rank
            else { return nil }
            outputs = weights.shape[0]
            signature = .convolution(
                conv.parameters, activation: conv.epilogue.activation, hasBias: node.inputs.count == 3,
                window: Array(weights.shape.dropFirst()), dtype: weights.dtype)
        } else {
            return nil
        }
        if node.inputs.count == 3 {
            guard let bias = graph.initializers[node.inputs[2]], bias.rank == 1, bias.shape[0] == outputs,
                bias.dtype == weights.dtype
            else { return nil }
        }
        return (node.inputs[0], signature)
    }

    /// The nodes that take each member's place: a slice of the wide layer (preceded, at the first member, by
    /// the layer itself).
    private func fuse(_ members: [Int], _ graph: inout Graph, _ context: PassContext) throws -> [Int: [Node]] {
        let nodes = members.map { graph.nodes[$0] }
        let first = nodes[0]
        // A product's columns are the weights' last axis unless B is transposed; a convolution's channels, axis 1
        // of its output, are the weights' first.
        let product = first.layer as? MatMulLayer
        let weightAxis = product.map { $0.transposeB ? 0 : 1 } ?? 0
        let weights = try concatenate(nodes.map { $0.inputs[1] }, axis: weightAxis, &graph, context)
        var inputs = [first.inputs[0], weights]
        if first.inputs.count == 3 {
            inputs.append(try concatenate(nodes.map { $0.inputs[2] }, axis: 0, &graph, context))
        }
        let wide = graph.freshName(first.outputs[0] + "_wide")
        let counts = nodes.map { node in graph.initializers[node.inputs[1]]?.shape[weightAxis] ?? 0 }
        // Typed now, so later passes of the same round see the wide result's shape.
        let outputAxis = product == nil ? 1 : -1
        if let t = graph.type(of: first.outputs[0])?.tensorType, var dims = t.shape, !dims.isEmpty {
            dims[outputAxis < 0 ? dims.count - 1 : outputAxis] = .value(counts.reduce(0, +))
            graph.valueTypes[wide] = .tensor(TensorType(t.dtype, dims))
        }
        let layer = Node(
            name: nodes.map(\.name).joined(separator: " + "), layer: first.layer, inputs: inputs, outputs: [wide])
        var result: [Int: [Node]] = [:]
        var start = 0
        for (index, (node, count)) in zip(members, zip(nodes, counts)) {
            let slice = Node(
                name: node.name,
                layer: SliceLayer(
                    starts: [start], ends: [start + count], axes: [outputAxis], steps: nil, isStatic: true),
                inputs: [wide], outputs: node.outputs)
            result[index] = index == members[0] ? [layer, slice] : [slice]
            start += count
        }
        return result
    }

    /// A new constant joining the named constants along `axis`.
    private func concatenate(
        _ names: [String], axis: Int, _ graph: inout Graph, _ context: PassContext
    ) throws
        -> String
    {
        let node = Node(name: "horizontal-fusion", layer: ConcatLayer(axis: axis), inputs: names, outputs: ["joined"])
        guard
            case .tensor(let joined)? = try context.evaluate(
                node, names.map { graph.initializers[$0].map(Value.tensor) }
            ).first
        else { throw KilnError.runtime("concatenating \(names) gave no tensor") }
        return graph.addConstant(joined, named: names[0] + "_joined")
    }
}
