import ArgumentParser
import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe an ONNX model (producer, opsets, inputs and outputs, operators, the layer graph) or a plan."
    )

    @Argument(help: "The ONNX model file, or a plan built by `kiln build`.")
    var model: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Flag(help: "Show the layer graph as imported, before the optimizer fuses layers.")
    var noOptimize = false

    @Option(
        help:
            "Show the graph specialized to this batch (each input's leading symbolic dimension), as a GPU engine compiles it."
    )
    var batch: Int?

    @OptionGroup var optimizerOptions: OptimizerOptions

    @Flag(
        help:
            "Also list each fusion the optimizer considered and did not make, with the reason (for a plan: its timed tactics)."
    )
    var verbose = false

    func run() throws {
        let url = ModelPath.resolve(model)
        if let plan = try EngineSource.readPlan(url) {
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            let report = PlanReport(plan, fileBytes: size)
            print(json ? try report.jsonText() : report.text)
            if verbose && !json { print(report.tacticsText) }
            return
        }
        let imported = try ONNXImporter.load(contentsOf: url)
        // By default the graph is the one the engine runs: each fused layer's name lists the ONNX nodes it covers.
        var graph = imported.graph
        let disabled = try optimizerOptions.disabledPasses()
        let rejections = RejectedFusions()
        let hear: @Sendable (String, String) -> Void = { node, reason in rejections.add(node, reason) }
        let listen = verbose ? hear : nil
        if !noOptimize {
            do {
                let config = BuilderConfig(disabledPasses: disabled, rejectedFusions: listen)
                graph = try Builder.build(imported.graph, device: CPUDevice(), config: config).graph
                if let batch { graph = try specialize(graph, batch: batch, disabled: disabled, listen: listen) }
            } catch {
                // A model the engine cannot build is still worth describing as imported.
                FileHandle.standardError.write(Data("note: showing the imported graph: \(error)\n".utf8))
            }
        }
        let report = ModelReport(imported, graph: graph)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
        if verbose { print(rejections.text(standingIn: graph)) }
    }

    private func specialize(
        _ graph: Graph, batch: Int, disabled: Set<String>, listen: (@Sendable (String, String) -> Void)?
    ) throws -> Graph {
        let shapes = try graph.inputs.map { info -> [Int] in
            guard let dims = info.type?.tensorType?.shape else {
                throw KilnError.invalidArgument("input '\(info.name)' has no known shape to specialize")
            }
            return ShapeText.batchShape(dims, batch: batch)
        }
        return try graph.specialized(
            toInputShapes: shapes, evaluator: CPUDevice(options: .untuned), disabledPasses: disabled,
            rejectedFusions: listen)
    }
}

/// What `kiln inspect` reports, as text or JSON.
struct ModelReport: Encodable {
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

    init(_ model: ONNXModel, graph optimizedGraph: Graph? = nil) {
        let g = optimizedGraph ?? model.graph
        producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        irVersion = model.irVersion
        opsets = Dictionary(uniqueKeysWithValues: model.opsets.map { ($0.key.isEmpty ? "ai.onnx" : $0.key, $0.value) })
        inputs = Port.list(g.inputs)
        outputs = Port.list(g.outputs)
        operators = model.operatorHistogram
        layers = ReportLines.layerCounts(g)
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
        lines += ReportLines.ports("inputs", inputs) + ReportLines.ports("outputs", outputs)
        lines.append("constants:    \(initializers) tensors, \(parameters) elements")
        lines += ReportLines.counts("operators", operators) + ReportLines.counts("layers", layers)
        lines.append("")
        lines.append(graph)
        return lines.joined(separator: "\n")
    }
}

/// The fusions the optimizer reported as not made, in the order first heard, each once.
final class RejectedFusions: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(node: String, reason: String)] = []

    func add(_ node: String, _ reason: String) {
        lock.lock()
        defer { lock.unlock() }
        if !entries.contains(where: { $0.node == node && $0.reason == reason }) { entries.append((node, reason)) }
    }

    /// The rejections whose node is still a layer of its own in `graph` (a later round may have fused it after
    /// all), one line each.
    func text(standingIn graph: Graph) -> String {
        lock.lock()
        defer { lock.unlock() }
        let standing = Set(graph.nodes.map(\.name))
        let kept = entries.filter { standing.contains($0.node) }
        guard !kept.isEmpty else { return "fusions considered and not made: none" }
        return (["fusions considered and not made:"] + kept.map { "  \($0.node): \($0.reason)" })
            .joined(separator: "\n")
    }
}
