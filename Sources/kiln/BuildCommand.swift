import ArgumentParser
import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

struct BuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Optimize a model for one device and save the engine as a plan file.",
        discussion: """
            The plan holds the optimized graph, its weights and, for each --shape set, the GPU code compiled for
            it, so `kiln run`, `bench` and `inspect` load it without the ONNX file or NVRTC. The same model,
            options and device give a byte-identical plan.
            """
    )

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "The plan file to write (FILE.kiln).")
    var output: String

    @Option(
        name: .customLong("shape"),
        help: "NAME=64x3x224x224: compile the engine for this input shape now; repeatable (one set per build).")
    var shapes: [String] = []

    @Option(help: "Compile for this batch (each input's leading symbolic dimension) when --shape does not say.")
    var batch: Int?

    @Option(
        name: .customLong("profile"),
        help: ArgumentHelp(
            "NAME=MIN:OPT:MAX (dims like 1x3x224x224), comma-separated for several inputs: the shapes the engine "
                + "accepts; repeat for several profiles. OPT, MIN and MAX are compiled now.",
            valueName: "profile"))
    var profiles: [String] = []

    @Flag(help: "Print the device memory one execution context needs for the compiled shapes.")
    var memoryReport = false

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var optimizerOptions: OptimizerOptions
    @OptionGroup var precisionOptions: PrecisionOptions

    func validate() throws {
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        let start = Date()
        let url = ModelPath.resolve(model)
        let imported = try withErrorContext(model) { try ONNXImporter.load(contentsOf: url) }
        let disabled = try optimizerOptions.disabledPasses()
        let device = try deviceOptions.make(disabledPasses: disabled)
        var config = try optimizerOptions.builderConfig()
        config.profiles = try profiles.map(Self.parseProfile)
        config.int8 = try precisionOptions.int8Config(inputs: imported.graph.inputs)
        config.half = try precisionOptions.halfConfig(inputs: imported.graph.inputs)
        let engine = try withErrorContext(model) { try Builder.build(imported.graph, device: device, config: config) }
        let inputShapes = try compiledShapes(engine)
        var options = BuildOptions(
            disabledPasses: disabled, tf32: deviceOptions.tf32, allowCPUFallback: deviceOptions.allowCPUFallback,
            shapes: inputShapes, level: deviceOptions.level)
        options.profiles = config.profiles
        if !inputShapes.isEmpty {
            try withErrorContext(model) { try engine.prepare(inputShapes: try engine.orderedShapes(inputShapes)) }
        }
        var memory: [MemoryReport] = []
        let compiled =
            (inputShapes.isEmpty ? [] : [inputShapes])
            + config.profiles.flatMap { $0.compiledShapeSets(graphInputs: engine.inputs) }
        for set in compiled {
            // Devices that plan an arena per shape (the GPU) describe it; the CPU allocates as layers run.
            if let report = try? engine.describe(inputShapes: try engine.orderedShapes(set)) {
                memory.append(MemoryReport(shapes: set, report: report))
            }
        }
        try deviceOptions.saveTimingCache(device)
        let plan = engine.plan(options: options, memory: memory)
        let file = URL(fileURLWithPath: output)
        try plan.write(to: file)
        let seconds = Date().timeIntervalSince(start)
        print(
            "built \(url.lastPathComponent) for \(device.properties.name): \(engine.graph.nodes.count) layers, "
                + "\(plan.code.count) compiled kernels; wrote \(output) (\(Self.mib(try Self.fileSize(file)))) in "
                + String(format: "%.1f s", seconds))
        if let precision = plan.precision { print(PrecisionText.lines(precision).joined(separator: "\n")) }
        if memoryReport { print(Self.memoryText(plan)) }
    }

    /// `input=1x3x224x224:8x3x224x224:64x3x224x224,mask=...`
    static func parseProfile(_ text: String) throws -> ShapeProfile {
        func dims(_ part: Substring) throws -> [Int] { try ShapeText.dims(part, in: text, option: "--profile") }
        let ranges = try text.split(separator: ",").map { entry -> ShapeProfile.Range in
            let (name, value) = try ShapeText.nameValue(String(entry), option: "--profile")
            let parts = value.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3 else {
                throw KilnError.invalidArgument("--profile \(text): expected NAME=MIN:OPT:MAX")
            }
            return ShapeProfile.Range(
                name: name, min: try dims(parts[0]), opt: try dims(parts[1]), max: try dims(parts[2]))
        }
        return ShapeProfile(inputs: ranges)
    }

    /// The shapes to compile: --shape entries, then --batch for the inputs they leave out; with neither, the
    /// inputs' own shapes when every one is fully static (a model with one shape is built for it).
    private func compiledShapes(_ engine: Engine) throws -> [BuildOptions.InputShape] {
        if shapes.isEmpty, batch == nil, profiles.isEmpty {
            let fixed = engine.inputs.map { $0.type?.tensorType?.concreteShape }
            guard fixed.allSatisfy({ $0 != nil }) else { return [] }
            return zip(engine.inputs, fixed).map { .init(name: $0.name, dims: $1 ?? []) }
        }
        var byName: [String: [Int]] = [:]
        for spec in shapes {
            let (name, value) = try ShapeText.nameValue(spec, option: "--shape")
            byName[name] = try ShapeText.dims(value, in: spec, option: "--shape")
        }
        if let batch {
            for info in engine.inputs where byName[info.name] == nil {
                guard let dims = info.type?.tensorType?.shape else { continue }
                byName[info.name] = ShapeText.batchShape(dims, batch: batch)
            }
        }
        return engine.inputs.compactMap { info in byName[info.name].map { .init(name: info.name, dims: $0) } }
            + byName.keys.filter { name in !engine.inputs.contains { $0.name == name } }.sorted()
            .map { .init(name: $0, dims: byName[$0] ?? []) }
    }

    /// The plan's memory reports, or why it has none.
    static func memoryText(_ plan: EnginePlan) -> String {
        guard !plan.memory.isEmpty else {
            let weights = plan.graph.initializers.values.reduce(0) { $0 + $1.byteCount }
            let note =
                plan.options.shapes.isEmpty
                ? "compile a shape (--shape or --batch) to plan activation memory"
                : "the \(plan.device.kind) backend allocates activations as layers run (no arena to plan)"
            return "memory: weights \(mib(weights)); \(note)"
        }
        return plan.memory.map { report in
            let shapes = report.shapes.map { "\($0.name)=\($0.dims.map(String.init).joined(separator: "x"))" }
            let ratio =
                report.naiveActivationBytes > 0
                ? String(
                    format: " (%.2f of %@, one buffer per value)",
                    Double(report.activationBytes) / Double(report.naiveActivationBytes),
                    mib(report.naiveActivationBytes)) : ""
            return """
                memory for \(shapes.joined(separator: " ")):
                  weights      \(mib(report.weightBytes)) (shared by every context)
                  activations  \(mib(report.activationBytes))\(ratio)
                  workspace    \(mib(report.workspaceBytes))
                  per context  \(mib(report.perContextBytes))
                """
        }.joined(separator: "\n")
    }

    static func fileSize(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
    }

    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}
