import Foundation
import KilnIR
import SwiftProtobuf

/// Reads ONNX models into Kiln's IR. Every error names the file and, where it applies, the node (name and
/// index), attribute or tensor.
public enum ONNXImporter {
    /// The newest default-domain opset Kiln reads.
    public static let maxOpset = 28
    /// Newest supported versions of the other domains.
    public static let maxDomainVersions: [String: Int] = [
        "ai.onnx.ml": 5, "ai.onnx.preview.training": 1, "ai.onnx.preview": 1,
    ]

    /// Imports the model file at `url`; external data is read relative to its folder.
    public static func load(contentsOf url: URL) throws -> ONNXModel {
        try withErrorContext(url.path) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw KilnError.io("no such file")
            }
            guard !isDirectory.boolValue else { throw KilnError.io("is a folder, not an ONNX model file") }
            let directory = url.deletingLastPathComponent()
            // Mapped and decoded without the weights' bytes, which become tensors one at a time (`ModelFile`).
            if let file = ModelFile(url) {
                return try ModelImporter(proto: try decode(file.stripped), directory: directory, weights: file).run()
            }
            // The file's bytes go as soon as they are decoded, before the weights become tensors.
            let proto = try decode(try read(url))
            return try ModelImporter(proto: proto, directory: directory).run()
        }
    }

    /// Imports a serialized ModelProto. `directory` is where external data files are looked up.
    public static func load(data: Data, directory: URL?) throws -> ONNXModel {
        try ModelImporter(proto: try decode(data), directory: directory).run()
    }

    private static func read(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw KilnError.io("cannot read the file: \(error.localizedDescription)")
        }
    }

    private static func decode(_ data: Data) throws -> Onnx_ModelProto {
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            return try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw KilnError.invalidModel("not a valid ONNX model (protobuf decoding failed: \(error))")
        }
    }
}

/// One model's import: opsets, local functions and the graph walk.
final class ModelImporter {
    let proto: Onnx_ModelProto
    let directory: URL?
    /// The mapped file whose bytes hold the main graph's raw weights, which `proto` lacks.
    let weights: ModelFile?
    var opsets: [String: Int] = [:]
    var functions: [String: Onnx_FunctionProto] = [:]
    var histogram: [String: Int] = [:]
    /// Names used anywhere in the model, so generated names never collide with later ones.
    var reservedNames: Set<String> = []
    private var inlineCounter = 0

    init(proto: Onnx_ModelProto, directory: URL?, weights: ModelFile? = nil) {
        self.proto = proto
        self.directory = directory
        self.weights = weights
    }

    func run() throws -> ONNXModel {
        guard proto.hasGraph else { throw KilnError.invalidModel("the model has no graph") }
        if proto.irVersion > 14 {
            throw KilnError.unsupported("IR version \(proto.irVersion) is newer than Kiln supports (14)")
        }
        for opset in proto.opsetImport {
            let domain = opset.domain == "ai.onnx" ? "" : opset.domain
            opsets[domain] = Int(opset.version)
        }
        if proto.opsetImport.isEmpty { opsets[""] = 1 }
        if let v = opsets[""], v > ONNXImporter.maxOpset {
            throw KilnError.unsupported(
                "opset \(v) is newer than Kiln supports (ai.onnx up to \(ONNXImporter.maxOpset)); export the model at a lower opset"
            )
        }
        for (domain, v) in opsets where !domain.isEmpty {
            if let max = ONNXImporter.maxDomainVersions[domain], v > max {
                throw KilnError.unsupported("opset \(v) of domain '\(domain)' is newer than Kiln supports (\(max))")
            }
        }
        for function in proto.functions {
            functions[FunctionKey(domain: function.domain, name: function.name, overload: function.overload).text] =
                function
        }
        collectNames(proto.graph)
        let graph = try importGraph(proto.graph, parent: nil, weights: weights)
        return ONNXModel(
            graph: graph,
            irVersion: Int(proto.irVersion),
            producerName: proto.producerName,
            producerVersion: proto.producerVersion,
            domain: proto.domain,
            modelVersion: Int(proto.modelVersion),
            docString: proto.docString,
            opsets: opsets,
            operatorHistogram: histogram,
            metadata: Dictionary(proto.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        )
    }

    private func collectNames(_ graph: Onnx_GraphProto) {
        for node in graph.node {
            reservedNames.formUnion(node.output)
            for a in node.attribute {
                if a.hasG { collectNames(a.g) }
                for g in a.graphs { collectNames(g) }
            }
        }
        reservedNames.formUnion(graph.initializer.map(\.name))
        reservedNames.formUnion(graph.input.map(\.name))
    }

    /// `weights`: where the raw bytes of `g`'s initializers are, when `g` was decoded without them (the main
    /// graph of a mapped file); each is given back once its tensor is made.
    func importGraph(_ g: Onnx_GraphProto, parent: GraphBuilder?, weights: ModelFile? = nil) throws -> Graph {
        let builder = GraphBuilder(model: self, parent: parent)
        let graphName = g.name.isEmpty ? "graph" : g.name
        for (index, stored) in g.initializer.enumerated() {
            guard !stored.name.isEmpty else {
                throw KilnError.invalidModel("graph '\(graphName)' has an unnamed initializer")
            }
            var t = stored
            if let raw = weights?.weight(index) { t.rawData = raw }
            builder.addInitializer(t.name, try Tensor(proto: t, directory: directory))
            weights?.release(index)
        }
        for s in g.sparseInitializer {
            let name = s.values.name
            builder.addInitializer(
                name,
                try withErrorContext("sparse initializer '\(name)'") {
                    try SparseTensor.densify(s, directory: directory)
                })
        }
        var inputs: [GraphValue] = []
        for info in g.input where builder.constant(named: info.name) == nil || parent != nil {
            let type = try withErrorContext("input '\(info.name)'") {
                info.hasType ? try ValueType(proto: info.type) : nil
            }
            if builder.initializers[info.name] != nil { continue }
            inputs.append(GraphValue(name: info.name, type: type))
            builder.reserve(info.name)
            if let type { builder.valueTypes[info.name] = type }
        }
        for info in g.valueInfo where info.hasType {
            if let type = try? ValueType(proto: info.type) { builder.valueTypes[info.name] = type }
        }
        for (index, nodeProto) in g.node.enumerated() {
            let node = try decodeNode(nodeProto, index: index)
            try withErrorContext(node.location) { try importNode(node, into: builder, opsets: opsets) }
        }
        var outputs: [GraphValue] = []
        for info in g.output {
            let type = try withErrorContext("output '\(info.name)'") {
                info.hasType ? try ValueType(proto: info.type) : nil
            }
            outputs.append(GraphValue(name: info.name, type: type))
        }
        var graph = Graph(
            name: graphName, inputs: inputs, outputs: outputs, initializers: builder.initializers,
            nodes: builder.nodes, valueTypes: builder.valueTypes)
        let outer = parent?.visibleNames ?? []
        graph = try graph.topologicallySorted(outerScope: outer)
        try graph.verify(outerScope: outer)
        try graph.inferTypes(outerTypes: parent.map(Self.visibleTypes) ?? [:])
        return graph
    }

    private static func visibleTypes(_ builder: GraphBuilder) -> [String: ValueType] {
        var types = builder.parent.map(visibleTypes) ?? [:]
        for (k, v) in builder.valueTypes { types[k] = v }
        for (k, t) in builder.initializers { types[k] = .tensor(t.type) }
        return types
    }

    func decodeNode(_ p: Onnx_NodeProto, index: Int) throws -> ONNXNode {
        let name = p.name.isEmpty ? "\(p.opType)_\(index)" : p.name
        var attributes: [String: ONNXAttribute] = [:]
        let location = "node \(index) '\(name)' (\(p.opType))"
        for a in p.attribute {
            guard a.refAttrName.isEmpty else { continue }  // resolved during function inlining
            attributes[a.name] = try withErrorContext("\(location): attribute '\(a.name)'") {
                try ONNXAttribute(proto: a, directory: directory)
            }
        }
        return ONNXNode(
            name: name, opType: p.opType, domain: p.domain == "ai.onnx" ? "" : p.domain,
            inputs: p.input, outputs: p.output, attributes: attributes, index: index)
    }

    func importNode(_ node: ONNXNode, into builder: GraphBuilder, opsets: [String: Int]) throws {
        histogram[node.domain.isEmpty ? node.opType : "\(node.domain).\(node.opType)", default: 0] += 1
        if let function = functions[FunctionKey(domain: node.domain, name: node.opType, overload: "").text] {
            try inline(function, call: node, into: builder)
            return
        }
        guard let opset = opsets[node.domain] else {
            throw KilnError.unsupported("domain '\(node.domain)' is not imported by the model's opsets")
        }
        guard let importer = OperatorRegistry.byOp[node.domain]?[node.opType] else {
            let domain = node.domain.isEmpty ? "ai.onnx" : node.domain
            if OperatorRegistry.byOp[node.domain] == nil && ONNXSchemaVersions.table[node.domain] == nil {
                throw KilnError.unsupported("unknown operator domain '\(domain)'")
            }
            throw KilnError.unsupported("operator '\(node.opType)' of domain '\(domain)' is not supported")
        }
        let versions = ONNXSchemaVersions.table[node.domain]?[node.opType] ?? [importer.minimumVersion]
        guard let version = versions.last(where: { $0 <= opset }) else {
            throw KilnError.invalidModel(
                "'\(node.opType)' does not exist at opset \(opset) (first version \(versions[0]))")
        }
        guard version >= importer.minimumVersion else {
            throw KilnError.unsupported(
                "'\(node.opType)' version \(version) (opset \(opset)) is not supported; Kiln implements version \(importer.minimumVersion) and later"
            )
        }
        let context = ImportContext(node: node, opset: opset, version: version, builder: builder)
        try importer.body(context)
    }
}

struct FunctionKey {
    var domain: String
    var name: String
    var overload: String
    var text: String { "\(domain == "ai.onnx" ? "" : domain)::\(name)::\(overload)" }
}
