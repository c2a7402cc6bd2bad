extension Graph {
    /// The readable text form used by tests, `kiln inspect` and golden files:
    ///
    ///     graph main(x: f32[N,3]) -> (y: f32[N,3])
    ///       const w: f32[3,3]
    ///       y = matMul(x, w)    # node-name : f32[N,3]
    public func textForm(indent: String = "") -> String {
        var lines: [String] = []
        let ins = inputs.map(\.description).joined(separator: ", ")
        let outs = outputs.map(\.description).joined(separator: ", ")
        lines.append("\(indent)graph \(name)(\(ins)) -> (\(outs))")
        for name in initializers.keys.sorted() {
            if let t = initializers[name] { lines.append("\(indent)  const \(name): \(t.type)") }
        }
        for node in nodes {
            let types = node.outputs.map { type(of: $0)?.description ?? "?" }.joined(separator: ", ")
            lines.append("\(indent)  \(node)    # \(node.name) : \(types)")
            for sub in node.layer.subgraphs { lines.append(sub.textForm(indent: indent + "    ")) }
        }
        return lines.joined(separator: "\n")
    }
}
