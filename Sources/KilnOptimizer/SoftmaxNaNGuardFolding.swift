import KilnIR

/// Folds `Where(IsNaN(y), 0, y)` after a softmax `y` into the softmax (`zeroNaN`), as PyTorch's attention export
/// writes it to zero fully masked rows: two pointwise passes over the attention matrix and a boolean tensor
/// disappear. The softmax output must be read only by the IsNaN and the Where, the IsNaN output only by the Where.
public struct SoftmaxNaNGuardFolding: Pass {
    public let name = "softmax-nan-guard-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        graph.rewriteEachNode { index, graph in fold(at: index, &graph) }
    }

    private func fold(at index: Int, _ graph: inout Graph) -> Bool {
        let select = graph.nodes[index]
        guard select.layer is SelectLayer, select.inputs.count == 3, select.outputs.count == 1 else { return false }
        let view = PatternView(graph)
        let (condition, zero, y) = (select.inputs[0], select.inputs[1], select.inputs[2])
        guard view.isConstant(zero, 0), let n = view.internalProducer(of: condition),
            let isNaN = graph.nodes[n].layer as? UnaryLayer, isNaN.op == .isNaN, graph.nodes[n].inputs == [y],
            view.uses[y] == 2, !graph.outputs.contains(where: { $0.name == y }), let s = view.producers[y],
            var softmax = graph.nodes[s].layer as? SoftmaxLayer, softmax.variant == .softmax, !softmax.zeroNaN,
            graph.type(of: select.outputs[0])?.tensorType == graph.type(of: y)?.tensorType
        else { return false }
        softmax.zeroNaN = true
        var fused = graph.nodes[s]
        fused.layer = softmax
        fused.name = [fused.name, graph.nodes[n].name, select.name].joined(separator: " + ")
        fused.outputs = select.outputs
        // The softmax's input is computed before the softmax, so the fused node may take the Where's place.
        graph.nodes[index] = fused
        graph.valueTypes[y] = nil
        graph.valueTypes[condition] = nil
        for i in [s, n].sorted(by: >) { graph.nodes.remove(at: i) }
        return true
    }
}
