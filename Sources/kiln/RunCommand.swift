import ArgumentParser
import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on the CPU or a GPU and write each output as NAME.npy.",
        discussion: "Inputs not given are filled with seeded random values of the declared dtype and shape."
    )

    @Argument(help: "The ONNX model file or a plan built by `kiln build`.")
    var model: String

    @Option(name: .customLong("input"), help: "NAME=FILE.npy; repeat for several inputs.")
    var inputFiles: [String] = []

    @Option(help: "An .npz archive whose members are named after the inputs.")
    var inputs: String?

    @Option(name: .customLong("shape"), help: "NAME=1x3x224x224: the shape of a random input; repeatable.")
    var shapes: [String] = []

    @Option(help: "Write outputs here (created if missing).")
    var outputDir: String?

    @Option(help: "Seed for random inputs.")
    var seed: UInt64 = 0

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var optimizerOptions: OptimizerOptions
    @OptionGroup var precisionOptions: PrecisionOptions

    @Option(help: "Run the inference this many times and report the median time (outputs are from the last run).")
    var `repeat`: Int = 1

    func validate() throws {
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        let source = try EngineSource.load(
            model, deviceOptions: deviceOptions, optimizerOptions: optimizerOptions,
            precisionOptions: precisionOptions)
        let (engine, device) = (source.engine, source.device)
        let feeds = try InputFeeds(
            engine: engine, files: inputFiles, archive: inputs, shapes: shapes, seed: seed
        ).values()
        let context = engine.makeContext()
        var times: [Double] = []
        var outputs: [String: Value] = [:]
        for _ in 0..<`repeat` {
            let start = Date()
            outputs = try withErrorContext(model) { try context.run(feeds) }
            times.append(Date().timeIntervalSince(start) * 1000)
        }
        let median = times.sorted()[times.count / 2]
        let runs = `repeat` == 1 ? "" : " (median of \(`repeat`) runs, first \(String(format: "%.1f", times[0])) ms)"
        print(
            "ran \(ModelPath.resolve(model).lastPathComponent) on \(device.properties.name) in \(String(format: "%.1f", median)) ms\(runs)"
        )
        var files: [(String, Data)] = []
        for info in engine.outputs {
            guard let value = outputs[info.name] else { continue }
            print(OutputSummary.line(name: info.name, value: value))
            if outputDir != nil, case .tensor(let t) = value {
                files.append(
                    (
                        OutputSummary.fileName(info.name),
                        try withErrorContext("output '\(info.name)'") { try NPY.encode(t) }
                    ))
            }
        }
        if let outputDir { try OutputSummary.write(files, to: outputDir) }
        if source.plan == nil { try deviceOptions.saveTimingCache(device) }
    }
}
