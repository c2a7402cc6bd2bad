import KilnIR

/// What an operator importer sees: the node, its attributes, the opset in force, constant inputs, and a way
/// to emit layers. Attribute getters throw errors naming the attribute; the importer adds the node.
public final class ImportContext {
    public let node: ONNXNode
    /// The model's opset version for the node's domain.
    public let opset: Int
    /// The op's schema version in force: the newest version not after `opset`.
    public let version: Int
    let builder: GraphBuilder
    private var emitted = 0

    init(node: ONNXNode, opset: Int, version: Int, builder: GraphBuilder) {
        self.node = node
        self.opset = opset
        self.version = version
        self.builder = builder
    }

    // MARK: attributes

    public func has(_ name: String) -> Bool { node.attributes[name] != nil }

    public func attribute(_ name: String) -> ONNXAttribute? { node.attributes[name] }

    private func missing(_ name: String) -> KilnError { KilnError.invalidModel("missing required attribute '\(name)'") }

    private func wrongType(_ name: String, _ want: String) -> KilnError {
        KilnError.invalidModel(
            "attribute '\(name)' should be \(want), is \(node.attributes[name]?.typeName ?? "absent")")
    }

    public func int(_ name: String, default value: Int? = nil) throws -> Int {
        switch node.attributes[name] {
        case .int(let v)?: return Int(v)
        case nil: if let value { return value } else { throw missing(name) }
        default: throw wrongType(name, "an int")
        }
    }

    public func optionalInt(_ name: String) throws -> Int? { has(name) ? try int(name) : nil }

    public func ints(_ name: String, default value: [Int]? = nil) throws -> [Int] {
        switch node.attributes[name] {
        case .ints(let v)?: return v.map { Int($0) }
        case .int(let v)?: return [Int(v)]
        case nil: if let value { return value } else { throw missing(name) }
        default: throw wrongType(name, "a list of ints")
        }
    }

    public func optionalInts(_ name: String) throws -> [Int]? { has(name) ? try ints(name) : nil }

    public func float(_ name: String, default value: Float? = nil) throws -> Float {
        switch node.attributes[name] {
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        case nil: if let value { return value } else { throw missing(name) }
        default: throw wrongType(name, "a float")
        }
    }

    public func floats(_ name: String, default value: [Float]? = nil) throws -> [Float] {
        switch node.attributes[name] {
        case .floats(let v)?: return v
        case .float(let v)?: return [v]
        case nil: if let value { return value } else { throw missing(name) }
        default: throw wrongType(name, "a list of floats")
        }
    }

    public func string(_ name: String, default value: String? = nil) throws -> String {
        switch node.attributes[name] {
        case .string(let v)?: return v
        case nil: if let value { return value } else { throw missing(name) }
        default: throw wrongType(name, "a string")
        }
    }

    public func strings(_ name: String, default value: [String]? = nil) throws -> [String] {
        switch node.attributes[name] {
        case .strings(let v)?: return v
        case .string(let v)?: return [v]
        case nil: if let value { return value } else { throw missing(name) }
        default: throw wrongType(name, "a list of strings")
        }
    }

    public func tensor(_ name: String) throws -> Tensor {
        switch node.attributes[name] {
        case .tensor(let v)?: return v
        case nil: throw missing(name)
        default: throw wrongType(name, "a tensor")
        }
    }

    public func optionalTensor(_ name: String) throws -> Tensor? { has(name) ? try tensor(name) : nil }

    /// Imports a graph attribute (a control-flow body) with this graph's values visible to it.
    public func graph(_ name: String) throws -> Graph {
        guard case .graph(let proto)? = node.attributes[name] else {
            throw has(name) ? wrongType(name, "a graph") : missing(name)
        }
        return try withErrorContext("attribute '\(name)'") { try builder.importSubgraph(proto) }
    }

    // MARK: inputs

    /// Input names with trailing omitted inputs dropped; an omitted input in the middle is "".
    public var inputs: [String] {
        var names = node.inputs
        while names.last == "" { names.removeLast() }
        return names
    }

    public var outputs: [String] { node.outputs }

    /// Whether input `index` is given (present and non-empty).
    public func hasInput(_ index: Int) -> Bool { index < node.inputs.count && !node.inputs[index].isEmpty }

    /// The value of input `index` when it is known at import time (an initializer or Constant output).
    public func constant(_ index: Int) -> Tensor? {
        guard hasInput(index) else { return nil }
        return builder.constant(named: node.inputs[index])
    }

    /// The static type of input `index`, when known.
    public func inputType(_ index: Int) -> ValueType? {
        guard hasInput(index) else { return nil }
        return builder.type(of: node.inputs[index])
    }

    // MARK: emitting

    /// Adds a layer. Inputs and outputs default to the node's own.
    public func emit(_ layer: any Layer, inputs: [String]? = nil, outputs: [String]? = nil) {
        let name = emitted == 0 ? node.name : "\(node.name)/\(emitted)"
        emitted += 1
        builder.append(Node(name: name, layer: layer, inputs: inputs ?? self.inputs, outputs: outputs ?? node.outputs))
    }

    /// A fresh value name for an intermediate result of a multi-layer import.
    public func temporary(_ hint: String) -> String { builder.uniqueName("\(node.name)/\(hint)") }

    /// Adds a constant and returns its name.
    public func constant(_ tensor: Tensor, hint: String) -> String {
        let name = temporary(hint)
        builder.addInitializer(name, tensor)
        return name
    }

    /// Makes `output` an alias of a known constant (for nodes that fold at import, like Shape of a static shape).
    public func defineConstant(_ output: String, _ tensor: Tensor) {
        builder.addInitializer(output, tensor)
    }

    /// A parse-time error for this node.
    public func invalid(_ message: String) -> KilnError { KilnError.invalidModel(message) }
    public func unsupported(_ message: String) -> KilnError { KilnError.unsupported(message) }
}
