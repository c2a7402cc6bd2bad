import KilnIR

/// An ONNX node with decoded attributes, as importers see it.
public struct ONNXNode: Sendable {
    public var name: String
    public var opType: String
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: ONNXAttribute]
    /// Position in its graph, for error messages.
    public var index: Int

    /// How errors name this node: `node 3 'conv1' (Conv)`.
    public var location: String {
        let op = domain.isEmpty ? opType : "\(domain).\(opType)"
        return "node \(index) '\(name)' (\(op))"
    }
}

/// Imports one ONNX operator: reads the node through the context and emits layers.
public struct OperatorImporter: Sendable {
    public let domain: String
    public let op: String
    /// The oldest schema version of the op this importer implements; every newer one up to the supported opset
    /// is implemented too (the importer reads `context.version` where versions differ).
    public let minimumVersion: Int
    public let body: @Sendable (ImportContext) throws -> Void

    public init(
        _ op: String, domain: String = "", since minimumVersion: Int = 1,
        _ body: @escaping @Sendable (ImportContext) throws -> Void
    ) {
        self.op = op
        self.domain = domain
        self.minimumVersion = minimumVersion
        self.body = body
    }

    /// An importer that maps the node one-to-one onto the layer `make` builds.
    public static func layer(
        _ op: String, domain: String = "", since: Int = 1,
        _ make: @escaping @Sendable (ImportContext) throws -> any Layer
    ) -> OperatorImporter {
        OperatorImporter(op, domain: domain, since: since) { context in try context.emit(make(context)) }
    }
}
