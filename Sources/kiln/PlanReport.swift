import Foundation
import KilnIR
import KilnRuntime

/// What `kiln inspect PLAN` reports, as text or JSON; read from the file alone (no device is opened).
struct PlanReport: Encodable {
    struct Memory: Encodable {
        var shapes: [String: [Int]]
        var weightBytes: Int
        var activationBytes: Int
        var naiveActivationBytes: Int
        var workspaceBytes: Int
        var perContextBytes: Int
        var launches: Int
    }

    var formatVersion: UInt32
    var kilnVersion: String
    var device: String
    var deviceSoftware: String
    var fileBytes: Int
    var options: [String: String]
    var inputs: [Port]
    var outputs: [Port]
    var layers: [String: Int]
    var weightBytes: Int
    var compiledKernels: Int
    /// Layer signature -> the implementation timing chose.
    var tactics: [String: String]
    var memory: [Memory]
    /// The int8 build's decisions and accuracy; nil for float32 plans.
    var precision: PrecisionReport?
    var graph: String

    init(_ plan: EnginePlan, fileBytes: Int) {
        let g = plan.graph
        formatVersion = EnginePlan.formatVersion
        kilnVersion = plan.kilnVersion
        device = plan.device.summary
        deviceSoftware = plan.device.software
        self.fileBytes = fileBytes
        let shapes = plan.options.shapes.map { "\($0.name)=\($0.dims.map(String.init).joined(separator: "x"))" }
        options = [
            "tf32": plan.options.tf32 ? "on" : "off",
            "level": "\(plan.options.level), \(plan.tactics.count) timed tactics",
            "cpu fallback": plan.options.allowCPUFallback ? "allowed" : "off",
            "passes left out": plan.options.disabledPasses.isEmpty
                ? "none" : plan.options.disabledPasses.sorted().joined(separator: ", "),
            "compiled shapes": shapes.isEmpty ? "none (compiled on first use)" : shapes.joined(separator: " "),
            "profiles": plan.options.profiles.isEmpty
                ? "none (any shape the graph allows)"
                : plan.options.profiles.map(\.description).joined(separator: "; "),
        ]
        inputs = Port.list(g.inputs)
        outputs = Port.list(g.outputs)
        layers = ReportLines.layerCounts(g)
        weightBytes = g.initializers.values.reduce(0) { $0 + $1.byteCount }
        compiledKernels = plan.code.count
        tactics = plan.tactics
        memory = plan.memory.map { report in
            Memory(
                shapes: Dictionary(report.shapes.map { ($0.name, $0.dims) }, uniquingKeysWith: { a, _ in a }),
                weightBytes: report.weightBytes, activationBytes: report.activationBytes,
                naiveActivationBytes: report.naiveActivationBytes, workspaceBytes: report.workspaceBytes,
                perContextBytes: report.perContextBytes, launches: report.launches)
        }
        precision = plan.precision
        graph = g.textForm()
    }

    /// The timed tactics, one line each (`kiln inspect PLAN --verbose`).
    var tacticsText: String {
        guard !tactics.isEmpty else { return "timed tactics: none" }
        return
            (["timed tactics (signature -> choice):"]
            + tactics.sorted { $0.key < $1.key }.map { "  \($0.key) -> \($0.value)" })
            .joined(separator: "\n")
    }

    var text: String {
        func mib(_ bytes: Int) -> String { BuildCommand.mib(bytes) }
        var lines: [String] = []
        lines.append("plan:             format \(formatVersion), built by Kiln \(kilnVersion), \(mib(fileBytes))")
        lines.append("device:           \(device)\(deviceSoftware.isEmpty ? "" : ", \(deviceSoftware)")")
        for (key, value) in options.sorted(by: { $0.key < $1.key }) {
            lines.append("\((key + ":").padding(toLength: 18, withPad: " ", startingAt: 0))\(value)")
        }
        lines += ReportLines.ports("inputs", inputs) + ReportLines.ports("outputs", outputs)
        lines.append("weights:          \(mib(weightBytes)); compiled kernels: \(compiledKernels)")
        for m in memory {
            let shapes = m.shapes.sorted { $0.key < $1.key }.map {
                "\($0.key)=\($0.value.map(String.init).joined(separator: "x"))"
            }
            lines.append(
                "memory (\(shapes.joined(separator: " "))): activations \(mib(m.activationBytes)) planned, "
                    + "\(mib(m.naiveActivationBytes)) one buffer per value; workspace \(mib(m.workspaceBytes)); "
                    + "\(mib(m.perContextBytes)) per context; \(m.launches) launches per inference")
        }
        lines += precision.map(PrecisionText.lines) ?? ["precision:        float32"]
        lines += ReportLines.counts("layers", layers)
        lines.append("")
        lines.append(graph)
        return lines.joined(separator: "\n")
    }

    func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // An accuracy guard can measure an infinite error (NaN outputs).
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
