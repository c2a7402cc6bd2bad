/// A named, typed value at a graph boundary.
public struct GraphValue: Sendable, Hashable, Codable, CustomStringConvertible {
    public var name: String
    public var type: ValueType?

    public init(name: String, type: ValueType?) {
        self.name = name
        self.type = type
    }

    public var description: String { "\(name): \(type.map(\.description) ?? "?")" }
}

/// The IR: a dataflow graph of layers in execution order. A value type (copy-on-write through its arrays), so
/// passes work on their own copy.
public struct Graph: Sendable, Codable {
    public var name: String
    public var inputs: [GraphValue]
    public var outputs: [GraphValue]
    /// Constant tensors by name (ONNX initializers and folded constants).
    public var initializers: [String: Tensor]
    /// Nodes in a valid execution order: every input is defined before its use.
    public var nodes: [Node]
    /// Static types of values, filled by type inference; graph inputs and outputs keep theirs in `inputs`/`outputs`.
    public var valueTypes: [String: ValueType]

    public init(
        name: String = "main", inputs: [GraphValue] = [], outputs: [GraphValue] = [],
        initializers: [String: Tensor] = [:], nodes: [Node] = [], valueTypes: [String: ValueType] = [:]
    ) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.nodes = nodes
        self.valueTypes = valueTypes
    }

    /// The best-known static type of a value.
    public func type(of value: String) -> ValueType? {
        if let t = valueTypes[value] { return t }
        if let t = initializers[value] { return .tensor(t.type) }
        if let v = inputs.first(where: { $0.name == value }) { return v.type }
        if let v = outputs.first(where: { $0.name == value }) { return v.type }
        return nil
    }

    /// Names of every value that the graph references but does not define: values of enclosing graphs.
    public var capturedValues: Set<String> {
        var defined = Set(inputs.map(\.name)).union(initializers.keys)
        var captured = Set<String>()
        for node in nodes {
            for input in node.inputs where !input.isEmpty && !defined.contains(input) { captured.insert(input) }
            for sub in node.layer.subgraphs {
                for name in sub.capturedValues where !defined.contains(name) { captured.insert(name) }
            }
            defined.formUnion(node.outputs)
        }
        for output in outputs where !defined.contains(output.name) { captured.insert(output.name) }
        return captured
    }

    /// How many nodes use each layer kind, for reports.
    public var kindHistogram: [LayerKind: Int] {
        nodes.reduce(into: [:]) { $0[$1.kind, default: 0] += 1 }
    }
}
