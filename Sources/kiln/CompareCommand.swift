import ArgumentParser
import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare a device's outputs with a reference: the CPU backend on the same inputs, or a file.",
        discussion: """
            Without --reference, runs the model on the chosen device and on the CPU reference backend with the
            same seeded random inputs (or --inputs) and compares every output. With --reference FILE.npz,
            takes inputs from its `input__NAME` members and expected outputs from `output__NAME` (the format of
            the benchmark exports). The error of an output is ||out - ref|| / ||ref||; exits 1 when any output's
            error is above --tolerance or not finite.
            """
    )

    @Argument(help: "The ONNX model file or a plan built by `kiln build`.")
    var model: String

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var optimizerOptions: OptimizerOptions
    @OptionGroup var precisionOptions: PrecisionOptions

    @Option(help: "Expected outputs (and inputs) as input__NAME / output__NAME members of an .npz.")
    var reference: String?

    @Option(help: "An .npz archive whose members are named after the inputs.")
    var inputs: String?

    @Option(name: .customLong("shape"), help: "NAME=1x3x224x224: the shape of a random input; repeatable.")
    var shapes: [String] = []

    @Option(help: "Largest relative error accepted.")
    var tolerance: Double = 1e-4

    @Option(help: "Seed for random inputs.")
    var seed: UInt64 = 0

    func run() throws {
        let url = ModelPath.resolve(model)
        let source = try EngineSource.load(
            model, deviceOptions: deviceOptions, optimizerOptions: optimizerOptions,
            precisionOptions: precisionOptions)
        let (engine, device) = (source.engine, source.device)
        var feeds: [String: Value]
        var expected: [String: Tensor] = [:]
        if let reference {
            let members = try withErrorContext(reference) {
                try NPZ.decode(try Data(contentsOf: URL(fileURLWithPath: reference)))
            }
            feeds = [:]
            for (name, tensor) in members {
                if name.hasPrefix("input__") { feeds[String(name.dropFirst(7))] = .tensor(tensor) }
                if name.hasPrefix("output__") { expected[String(name.dropFirst(8))] = tensor }
            }
            feeds = try InputFeeds(engine: engine, files: [], archive: nil, shapes: shapes, seed: seed)
                .values().merging(feeds) { _, given in given }
        } else {
            feeds = try InputFeeds(engine: engine, files: [], archive: inputs, shapes: shapes, seed: seed).values()
        }
        let outputs = try withErrorContext(model) { try engine.makeContext().run(feeds) }
        if reference == nil {
            // The CPU reference runs the graph as imported, or a plan's graph as it was saved.
            let graph = try source.plan?.graph ?? ONNXImporter.load(contentsOf: url).graph
            let cpu = try Builder.build(graph, device: CPUDevice(options: .untuned))
            for (name, value) in try cpu.makeContext().run(feeds) {
                if case .tensor(let t) = value { expected[name] = t }
            }
        }
        var worst = 0.0
        var failed = false
        for info in engine.outputs {
            guard let want = expected[info.name] else {
                Console.line("\(info.name): no reference value")
                continue
            }
            guard case .tensor(let got)? = outputs[info.name] else {
                Console.line("\(info.name): FAIL (not computed)")
                failed = true
                continue
            }
            guard got.shape == want.shape else {
                Console.line("\(info.name): FAIL shape \(got.shape), reference \(want.shape)")
                failed = true
                continue
            }
            let (relative, maxAbs) = try Self.errors(got, want)
            let ok = relative.isFinite && relative <= tolerance
            failed = failed || !ok
            worst = max(worst, relative.isFinite ? relative : .infinity)
            Console.line(
                "\(info.name): \(want.type) rel. error \(String(format: "%.2e", relative)), max abs. diff "
                    + "\(String(format: "%.2e", maxAbs)) \(ok ? "ok" : "FAIL")")
        }
        Console.line(
            "\(url.lastPathComponent) on \(device.properties.name): \(failed ? "FAIL" : "ok") (worst rel. error \(String(format: "%.2e", worst)), tolerance \(tolerance))"
        )
        if failed { throw ExitCode(1) }
    }

    /// ||a - b|| / ||b|| and max |a - b|, in double precision.
    static func errors(_ a: Tensor, _ b: Tensor) throws -> (Double, Double) {
        let x = try a.doubleValues()
        let y = try b.doubleValues()
        var diff = 0.0
        var norm = 0.0
        var maxAbs = 0.0
        for (u, v) in zip(x, y) {
            let d = u - v
            diff += d * d
            norm += v * v
            maxAbs = max(maxAbs, abs(d))
            if !u.isFinite && u != v { return (.nan, .nan) }
        }
        if norm == 0 { return (diff == 0 ? 0 : .infinity, maxAbs) }
        return ((diff / norm).squareRoot(), maxAbs)
    }
}
