import Foundation
import KilnIR

/// Accumulates the layers, constants and types of one graph (or subgraph) during import.
final class GraphBuilder {
    let model: ModelImporter
    let parent: GraphBuilder?
    private(set) var nodes: [Node] = []
    private(set) var initializers: [String: Tensor] = [:]
    var valueTypes: [String: ValueType] = [:]
    private var names: Set<String> = []

    init(model: ModelImporter, parent: GraphBuilder?) {
        self.model = model
        self.parent = parent
    }

    /// Adds a node and records its outputs' types right away, so later importers can read them
    /// (`ImportContext.inputType`). Inference errors surface later, with context, in `Graph.inferTypes`.
    func append(_ node: Node) {
        nodes.append(node)
        names.formUnion(node.outputs)
        let inputs = node.inputs.map { name -> LayerInput in
            name.isEmpty ? .absent : LayerInput(type: type(of: name), constant: constant(named: name))
        }
        guard let types = try? node.layer.inferTypes(inputs) else { return }
        for (output, type) in zip(node.outputs, types) where !output.isEmpty {
            if let type, valueTypes[output] == nil { valueTypes[output] = type }
        }
    }

    func addInitializer(_ name: String, _ tensor: Tensor) {
        initializers[name] = tensor
        names.insert(name)
    }

    func reserve(_ name: String) { names.insert(name) }

    func constant(named name: String) -> Tensor? { initializers[name] ?? parent?.constant(named: name) }

    func type(of name: String) -> ValueType? {
        if let t = initializers[name] { return .tensor(t.type) }
        return valueTypes[name] ?? parent?.type(of: name)
    }

    private func isTaken(_ name: String) -> Bool { names.contains(name) || (parent?.isTaken(name) ?? false) }

    func uniqueName(_ hint: String) -> String {
        var candidate = hint
        var n = 1
        while isTaken(candidate) || model.reservedNames.contains(candidate) {
            candidate = "\(hint)_\(n)"
            n += 1
        }
        names.insert(candidate)
        return candidate
    }

    /// Every value name visible here: this graph's and the enclosing graphs'.
    var visibleNames: Set<String> { names.union(parent?.visibleNames ?? []) }

    func importSubgraph(_ proto: Onnx_GraphProto) throws -> Graph {
        try model.importGraph(proto, parent: self)
    }
}
