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
    @OptionGroup var precisionOptions: PrecisionOptions

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

    @Option(help: "Concurrent execution contexts, each with its own memory and stream, each run by its own thread.")
    var streams: Int = 1

    @Flag(inversion: .prefixedNo, help: "Replay each inference's launches as one CUDA graph (GPU; on by default).")
    var cudaGraph = true

    @Flag(help: "After timing, profile each layer in a separate run.")
    var profile = false

    @Flag(
        help: """
            List each engine layer with how the device runs it: kernel steps, a view, no work (a concat whose             inputs were written in place), a CPU fallback (devices that compile per shape).
            """)
    var layers = false

    @Option(help: "Write the summary, profile and comparable result rows as JSON.")
    var json: String?

    @Option(help: "Seed for random inputs.")
    var seed: UInt64 = 0

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard warmup >= 0, duration > 0 else { throw ValidationError("--warmup and --duration must be positive") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        guard streams >= 1 else { throw ValidationError("--streams must be at least 1") }
    }

    func run() throws {
        let source = try EngineSource.load(
            model, deviceOptions: deviceOptions, optimizerOptions: optimizerOptions,
            precisionOptions: precisionOptions, cudaGraphs: cudaGraph)
        let (engine, device) = (source.engine, source.device)
        let feeds = try InputFeeds(
            engine: engine, files: [], archive: inputs, shapes: shapes + batchShapes(engine), seed: seed
        ).values().mapValues { try engine.pinnedCopy(of: $0) }
        let contexts = (0..<streams).map { _ in engine.makeContext() }
        let context = contexts[0]
        let name = source.name

        let buildStart = Date()
        _ = try withErrorContext(model) { try context.runTimed(feeds) }
        let firstRun = Date().timeIntervalSince(buildStart) * 1000
        Console.line("\(name): first run (compiles for these shapes) \(String(format: "%.1f", firstRun)) ms")
        // Devices that compile per shape describe the engine they built (the CPU interprets the graph).
        let built = try? context.report(for: feeds)
        if let built { Console.line(built.summaryLine) }
        if layers {
            for layer in built?.layers ?? [] {
                Console.line(
                    "  " + layer.kind.name.padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                        + layer.name + ": " + layer.implementation)
            }
            if built == nil {
                Console.line("layers: this device runs the optimized graph layer by layer (`kiln inspect` lists it)")
            }
        }

        let warmupEnd = Date().addingTimeInterval(warmup / 1000)
        _ = try Self.concurrently(contexts) { context in
            repeat { _ = try context.runTimed(feeds) } while Date() < warmupEnd
        }

        let progress = ProgressLine(enabled: isatty(STDOUT_FILENO) != 0)
        let start = Date()
        let perStream = iterations.map { ($0 + streams - 1) / streams }
        let collected = try Self.concurrently(contexts) { context -> [BenchSample] in
            var samples: [BenchSample] = []
            while true {
                let t0 = Date()
                let (_, timings) = try context.runTimed(feeds)
                samples.append(BenchSample(wall: Date().timeIntervalSince(t0) * 1000, timings: timings))
                let elapsed = Date().timeIntervalSince(start)
                if let perStream { if samples.count >= perStream { break } } else if elapsed >= duration { break }
                if context === contexts[0] {
                    progress.update("\(samples.count * contexts.count) runs, \(String(format: "%.1f", elapsed)) s")
                }
            }
            return samples
        }
        let samples = collected.flatMap { $0 }
        let wall = Date().timeIntervalSince(start)
        progress.finish()

        let summary = BenchSummary(
            model: name, device: device.properties.name, batch: batch, samples: samples, wallSeconds: wall,
            mode: mode(device, plan: source.plan, engine: source.engine), engine: built, streams: streams)
        summary.print()
        var profileRows: [ProfileRow] = []
        if profile {
            profileRows = try ProfileRow.measure(context: context, feeds: feeds, runs: 20)
            ProfileRow.print(profileRows)
        }
        if let json { try summary.writeJSON(to: json, profile: profileRows) }
        if source.plan == nil { try deviceOptions.saveTimingCache(device) }
    }

    /// Runs `body` once per context, each on its own thread, and returns the results in context order; the
    /// first error is rethrown after every thread finished.
    private static func concurrently<T>(
        _ contexts: [ExecutionContext], _ body: (ExecutionContext) throws -> T
    ) throws -> [T] {
        let slots = Slots<T>(contexts.count)
        withoutActuallyEscaping(body) { body in
            // Each context is used by exactly one thread, which is what ExecutionContext asks.
            let work = UncheckedSendable(value: (contexts, body))
            DispatchQueue.concurrentPerform(iterations: contexts.count) { index in
                slots.set(index, Result { try work.value.1(work.value.0[index]) })
            }
        }
        return try slots.values()
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

    private func mode(_ device: any Device, plan: EnginePlan?, engine: Engine) -> String {
        var precision = (plan?.options.tf32 ?? deviceOptions.tf32) ? "tf32" : "fp32"
        switch engine.precision?.precision {
        case "float16": precision = "fp16"
        case "bfloat16": precision = "bf16"
        case "int8": precision = "int8"
        case "int8+float16": precision = "int8_fp16"
        case "int8+bfloat16": precision = "int8_bf16"
        default: break
        }
        let streamsSuffix = streams > 1 ? "_s\(streams)" : ""
        return (device.properties.kind == "cpu" ? "kiln_cpu_\(precision)" : "kiln_\(precision)") + streamsSuffix
    }
}

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}

/// One result per thread, written by that thread only, read after all finished.
private final class Slots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<T, any Error>?]

    init(_ count: Int) { results = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<T, any Error>) { lock.withLock { results[index] = result } }

    func values() throws -> [T] {
        try lock.withLock { results }.map { slot in
            guard let slot else { throw KilnError.runtime("a benchmark thread produced no result") }
            return try slot.get()
        }
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
