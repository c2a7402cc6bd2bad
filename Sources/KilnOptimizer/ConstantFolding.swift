import KilnIR

/// Evaluates nodes whose inputs are all constants and turns their tensor outputs into initializers.
/// Random generators, control flow and results over the size limit are left alone. The dequantization of 8-bit
/// constants is 8-bit weights (int8, uint8, float8e4m3fn), which `QDQFolding` keeps in 8 bits: the standard pass
/// leaves it, and `QDQFolding` folds what it did not take with a `weightDequantization` pass.
public struct ConstantFolding: Pass {
    public enum Scope: Sendable {
        /// Every foldable node but the dequantization of 8-bit constants.
        case allButWeightDequantization
        /// Only the dequantization of 8-bit constants.
        case weightDequantization
    }

    public let name = "constant-folding"
    public var scope: Scope

    public init(_ scope: Scope = .allButWeightDequantization) { self.scope = scope }

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var changed = false
        var remaining: [Node] = []
        for node in graph.nodes {
            guard node.layer.isDeterministic, node.layer.subgraphs.isEmpty,
                Self.isWeightDequantization(node, graph) == (scope == .weightDequantization),
                node.inputs.contains(where: { !$0.isEmpty }),
                node.inputs.allSatisfy({ $0.isEmpty || graph.initializers[$0] != nil }),
                let folded = try? context.evaluate(
                    node, node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0].map(Value.tensor) }),
                folded.count >= node.outputs.count
            else {
                remaining.append(node)
                continue
            }
            var tensors: [Tensor] = []
            for value in folded.prefix(node.outputs.count) {
                guard case .tensor(let t) = value, t.byteCount <= context.foldingLimitBytes else { break }
                tensors.append(t)
            }
            guard tensors.count == node.outputs.count else {
                remaining.append(node)
                continue
            }
            for (name, tensor) in zip(node.outputs, tensors) where !name.isEmpty {
                graph.initializers[name] = tensor
                graph.valueTypes[name] = .tensor(tensor.type)
            }
            changed = true
        }
        graph.nodes = remaining
        return changed
    }

    static func isWeightDequantization(_ node: Node, _ graph: Graph) -> Bool {
        guard node.layer is DequantizeLayer, let input = node.inputs.first.flatMap({ graph.initializers[$0] })
        else { return false }
        return [.int8, .uint8, .float8e4m3fn].contains(input.dtype)
    }
}
