import KilnIR

/// Stores the constant B of a matMul as rows of its output columns (`[N, K]`, the product reading it
/// transposed) where the device has a faster kernel for that form: on CUDA, Kiln's split-TF32 product takes
/// B only as `[N, K]`, and the transformers' projections arrive as `x·W` with W `[K, N]`. The weight is
/// transposed once here, in place; a weight another layer also reads stays as it is.
/// Runs after the precision passes; the builder applies it when the device asks for it.
public struct WeightRows: Sendable {
    /// What `--no-fuse` and `--passes` call it.
    public static let name = "weight-rows"
    /// Whether the device runs this matMul (its weights of this dtype) faster with its B as `[N, K]`.
    public var wants: @Sendable (Node, DType) -> Bool

    public init(wants: @escaping @Sendable (Node, DType) -> Bool) {
        self.wants = wants
    }

    /// Rewrites `graph` and returns how many matMuls now read their weights as rows.
    @discardableResult
    public func apply(_ graph: inout Graph) -> Int {
        let uses = graph.useCounts
        var count = 0
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard var matMul = node.layer as? MatMulLayer, !matMul.transposeB, node.inputs.count >= 2,
                let weights = graph.initializers[node.inputs[1]], weights.rank == 2, uses[node.inputs[1]] == 1,
                wants(node, weights.dtype), let transposed = try? weights.permuted([1, 0])
            else { continue }
            graph.initializers[node.inputs[1]] = transposed
            if case .tensor(var type)? = graph.valueTypes[node.inputs[1]] {
                type.shape = transposed.shape.map { .value($0) }
                graph.valueTypes[node.inputs[1]] = .tensor(type)
            }
            matMul.transposeB = true
            graph.nodes[index].layer = matMul
            count += 1
        }
        return count
    }
}
