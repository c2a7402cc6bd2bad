import ArgumentParser
import Foundation
import KilnIR
import KilnONNX

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe an ONNX model: producer, opsets, inputs and outputs, operators, and the layer graph."
    )

    @Argument(help: "The ONNX model file.")
    var model: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let imported = try ONNXImporter.load(contentsOf: ModelPath.resolve(model))
        let report = ModelReport(imported)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}

/// What `kiln inspect` reports, as text or JSON.
struct ModelReport: Encodable {
    struct Port: Encodable {
        var name: String
        var type: String
    }
    var producer: String
    var irVersion: Int
    var opsets: [String: Int]
    var inputs: [Port]
    var outputs: [Port]
    var operators: [String: Int]
    var layers: [String: Int]
    var initializers: Int
    var parameters: Int
    var graph: String

    init(_ model: ONNXModel) {
        let g = model.graph
        producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        irVersion = model.irVersion
        opsets = Dictionary(uniqueKeysWithValues: model.opsets.map { ($0.key.isEmpty ? "ai.onnx" : $0.key, $0.value) })
        inputs = g.inputs.map { Port(name: $0.name, type: $0.type?.description ?? "?") }
        outputs = g.outputs.map { Port(name: $0.name, type: $0.type?.description ?? "?") }
        operators = model.operatorHistogram
        layers = Dictionary(uniqueKeysWithValues: g.kindHistogram.map { ($0.key.name, $0.value) })
        initializers = g.initializers.count
        parameters = g.initializers.values.reduce(0) { $0 + $1.count }
        graph = g.textForm()
    }

    var text: String {
        var lines: [String] = []
        lines.append("producer:     \(producer.isEmpty ? "(unknown)" : producer)")
        lines.append("IR version:   \(irVersion)")
        lines.append(
            "opsets:       " + opsets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        )
        lines.append("inputs:")
        for p in inputs { lines.append("  \(p.name): \(p.type)") }
        lines.append("outputs:")
        for p in outputs { lines.append("  \(p.name): \(p.type)") }
        lines.append("constants:    \(initializers) tensors, \(parameters) elements")
        lines.append("operators:")
        for (op, n) in operators.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            lines.append("  \(op.padding(toLength: 28, withPad: " ", startingAt: 0)) \(n)")
        }
        lines.append("layers:")
        for (kind, n) in layers.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            lines.append("  \(kind.padding(toLength: 28, withPad: " ", startingAt: 0)) \(n)")
        }
        lines.append("")
        lines.append(graph)
        return lines.joined(separator: "\n")
    }
}
