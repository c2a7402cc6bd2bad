import KilnIR

/// Fuses sibling matMuls that read the same input with constant weights (the Q, K and V projections of an
/// attention block) into one wider product: the weights, and biases, are concatenated along the output axis
/// and each original result becomes a static slice of the wide one. One larger product runs closer to the
/// device's peak than several narrow ones, and attention fusion reads the slices in place.
///
/// Runs after epilogue fusion, so the biases and activations are already part of the products.
public struct HorizontalFusion: Pass {
    public let name = "horizontal-fusion"
    public init() {}

    /// What must agree for products to share one launch.
    private struct Signature: Hashable {
        var transposeB: Bool
        var alpha: Float
        var beta: Float
        var activation: EpilogueActivation?
        var hasBias: Bool
        var depth: Int
        var dtype: DType
    }

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var groups: [String: [Signature: [Int]]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            guard let (input, signature) = candidate(node, graph) else { continue }
            groups[input, default: [:]][signature, default: []].append(index)
        }
        let sets = groups.values.flatMap(\.values).filter { $0.count >= 2 }
        guard !sets.isEmpty else { return false }
        // Each member becomes a slice in place; the wide product goes just before the group's first member.
        var replaced: [Int: [Node]] = [:]
        for members in sets {
            for (index, nodes) in try fuse(members, &graph, context) { replaced[index] = nodes }
        }
        graph.nodes = graph.nodes.indices.flatMap { replaced[$0] ?? [graph.nodes[$0]] }
        return true
    }

    /// The shared input and signature of a matMul that could join a group.
    private func candidate(_ node: Node, _ graph: Graph) -> (String, Signature)? {
        guard let mm = node.layer as? MatMulLayer, !mm.transposeA, !mm.epilogue.residual,
            node.inputs.count == 2 || node.inputs.count == 3, node.outputs.count == 1,
            let weights = graph.initializers[node.inputs[1]], weights.rank == 2,
            let inputShape = graph.type(of: node.inputs[0])?.tensorType?.shape, inputShape.count >= 2,
            graph.initializers[node.inputs[0]] == nil, isFusibleFloat(weights.dtype)
        else { return nil }
        let outputs = Self.outputCount(weights, mm)
        if node.inputs.count == 3 {
            guard let bias = graph.initializers[node.inputs[2]], bias.rank == 1, bias.shape[0] == outputs,
                bias.dtype == weights.dtype
            else { return nil }
        }
        let depth = mm.transposeB ? weights.shape[1] : weights.shape[0]
        return (
            node.inputs[0],
            Signature(
                transposeB: mm.transposeB, alpha: mm.alpha, beta: mm.beta, activation: mm.epilogue.activation,
                hasBias: node.inputs.count == 3, depth: depth, dtype: weights.dtype)
        )
    }

    /// The nodes that take each member's place: a slice of the wide product (preceded, at the first member,
    /// by the product itself).
    private func fuse(_ members: [Int], _ graph: inout Graph, _ context: PassContext) throws -> [Int: [Node]] {
        let nodes = members.map { graph.nodes[$0] }
        let first = nodes[0]
        guard let mm = first.layer as? MatMulLayer else { return [:] }
        let weights = try concatenate(nodes.map { $0.inputs[1] }, axis: mm.transposeB ? 0 : 1, &graph, context)
        var inputs = [first.inputs[0], weights]
        if first.inputs.count == 3 {
            inputs.append(try concatenate(nodes.map { $0.inputs[2] }, axis: 0, &graph, context))
        }
        let wide = graph.freshName(first.outputs[0] + "_wide")
        let counts = nodes.map { node in
            graph.initializers[node.inputs[1]].map { Self.outputCount($0, mm) } ?? 0
        }
        // Typed now, so later passes of the same round see the wide result's shape.
        if let t = graph.type(of: first.outputs[0])?.tensorType, var dims = t.shape, !dims.isEmpty {
            dims[dims.count - 1] = .value(counts.reduce(0, +))
            graph.valueTypes[wide] = .tensor(TensorType(t.dtype, dims))
        }
        let product = Node(
            name: nodes.map(\.name).joined(separator: " + "), layer: mm, inputs: inputs, outputs: [wide])
        var result: [Int: [Node]] = [:]
        var start = 0
        for (index, (node, count)) in zip(members, zip(nodes, counts)) {
            let slice = Node(
                name: node.name,
                layer: SliceLayer(starts: [start], ends: [start + count], axes: [-1], steps: nil, isStatic: true),
                inputs: [wide], outputs: node.outputs)
            result[index] = index == members[0] ? [product, slice] : [slice]
            start += count
        }
        return result
    }

    /// The columns a product with these 2-D weights computes.
    private static func outputCount(_ weights: Tensor, _ mm: MatMulLayer) -> Int {
        mm.transposeB ? weights.shape[0] : weights.shape[1]
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
