import ArgumentParser
import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a model's latency and throughput on the CPU or a GPU (what trtexec is to TensorRT).",
        discussion: """
            Inputs are seeded random values (or --inputs); a leading symbolic dimension is the batch. Latency is
            reported end to end (inputs copied in, outputs copied out) and for the computation alone (device
            events around the layers); `median_ms` in the JSON results is the computation's median, which is
            what framework baselines measure with inputs already on the device.
            """
    )

    @Argument(help: "The ONNX model file or a plan built by `kiln build`.")
    var model: String

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var optimizerOptions: OptimizerOptions

    @Option(help: "Batch size: the value of each input's leading symbolic dimension.")
    var batch: Int = 1

    @Option(name: .customLong("shape"), help: "NAME=1x3x224x224: an input's full shape; repeatable.")
    var shapes: [String] = []

    @Option(help: "An .npz archive whose members are named after the inputs.")
    var inputs: String?

    @Option(help: "Milliseconds of untimed runs before timing.")
    var warmup: Double = 500

    @Option(help: "Seconds of timed runs (ignored with --iterations).")
    var duration: Double = 3

    @Option(help: "Timed runs; overrides --duration.")
    var iterations: Int?

    @Option(help: "Concurrent execution contexts, each on its own stream.")
    var streams: Int = 1

    @Flag(help: "Replay each inference's launches as one CUDA graph.")
    var cudaGraph = false

    @Flag(help: "After timing, profile each layer in a separate run.")
    var profile = false

    @Option(help: "Write the summary, profile and comparable result rows as JSON.")
    var json: String?

    @Option(help: "Seed for random inputs.")
    var seed: UInt64 = 0

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard warmup >= 0, duration > 0 else { throw ValidationError("--warmup and --duration must be positive") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        guard streams == 1 else {
            throw ValidationError("--streams: only 1 execution context per engine is supported so far")
        }
    }

    func run() throws {
        let source = try EngineSource.load(
            model, deviceOptions: deviceOptions, optimizerOptions: optimizerOptions, cudaGraphs: cudaGraph)
        let (engine, device) = (source.engine, source.device)
        let feeds = try InputFeeds(
            engine: engine, files: [], archive: inputs, shapes: shapes + batchShapes(engine), seed: seed
        ).values()
        let context = engine.makeContext()
        let name = source.name

        let buildStart = Date()
        _ = try withErrorContext(model) { try context.runTimed(feeds) }
        let firstRun = Date().timeIntervalSince(buildStart) * 1000
        Console.line("\(name): first run (compiles for these shapes) \(String(format: "%.1f", firstRun)) ms")
        // Devices that compile per shape describe the engine they built (the CPU interprets the graph).
        let built = try? context.report(for: feeds)
        if let built { Console.line(built.summaryLine) }

        let warmupEnd = Date().addingTimeInterval(warmup / 1000)
        while Date() < warmupEnd { _ = try context.runTimed(feeds) }

        var samples: [BenchSample] = []
        let progress = ProgressLine(enabled: isatty(STDOUT_FILENO) != 0)
        let start = Date()
        while true {
            let t0 = Date()
            let (_, timings) = try context.runTimed(feeds)
            samples.append(BenchSample(wall: Date().timeIntervalSince(t0) * 1000, timings: timings))
            let elapsed = Date().timeIntervalSince(start)
            if let iterations { if samples.count >= iterations { break } } else if elapsed >= duration { break }
            progress.update("\(samples.count) runs, \(String(format: "%.1f", elapsed)) s")
        }
        let wall = Date().timeIntervalSince(start)
        progress.finish()

        let summary = BenchSummary(
            model: name, device: device.properties.name, batch: batch, samples: samples, wallSeconds: wall,
            mode: mode(device), engine: built)
        summary.print()
        var profileRows: [ProfileRow] = []
        if profile {
            profileRows = try ProfileRow.measure(context: context, feeds: feeds, runs: 20)
            ProfileRow.print(profileRows)
        }
        if let json { try summary.writeJSON(to: json, profile: profileRows) }
    }

    /// `NAME=NxD1x...` for every input whose leading dimension is symbolic and whose other dimensions are known.
    private func batchShapes(_ engine: Engine) -> [String] {
        let given = Set(shapes.compactMap { $0.split(separator: "=").first.map(String.init) })
        return engine.inputs.compactMap { info in
            guard !given.contains(info.name), let dims = info.type?.tensorType?.shape, let first = dims.first,
                first.value == nil
            else { return nil }
            let rest = dims.dropFirst().map { $0.value ?? 1 }
            return "\(info.name)=" + ([batch] + rest).map(String.init).joined(separator: "x")
        }
    }

    private func mode(_ device: any Device) -> String {
        let precision = deviceOptions.tf32 ? "tf32" : "fp32"
        return device.properties.kind == "cpu" ? "kiln_cpu_\(precision)" : "kiln_\(precision)"
    }
}

/// Rewrites one terminal line in place while long work runs.
struct ProgressLine {
    let enabled: Bool
    private let last = LastUpdate()

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ text: String) {
        guard enabled, last.due() else { return }
        FileHandle.standardOutput.write(Data("\r  \(text)   ".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
    }

    final class LastUpdate {
        private var time = Date.distantPast
        func due() -> Bool {
            guard Date().timeIntervalSince(time) > 0.25 else { return false }
            time = Date()
            return true
        }
    }
}
