/// One layer instance in a graph, connected to values by name. An empty input name is an omitted optional input.
public struct Node: Sendable, CustomStringConvertible {
    public var name: String
    public var layer: any Layer
    public var inputs: [String]
    public var outputs: [String]

    public init(name: String, layer: any Layer, inputs: [String], outputs: [String]) {
        self.name = name
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
    }

    public var kind: LayerKind { layer.kind }

    /// `y = pointwise.unary[op=relu](x)`, the node's line in the text form.
    public var description: String {
        let params = layer.description
        let lhs = outputs.isEmpty ? "" : outputs.joined(separator: ", ") + " = "
        let args = inputs.map { $0.isEmpty ? "_" : $0 }.joined(separator: ", ")
        return "\(lhs)\(kind)\(params.isEmpty ? "" : "[\(params)]")(\(args))"
    }
}
