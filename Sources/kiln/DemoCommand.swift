import ArgumentParser
import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

/// Kiln's main job on its bundled model: build the digits classifier in every precision the device offers,
/// then measure each engine's accuracy on the test split, its latency and throughput, and its size.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Build the bundled digits model in each precision and compare accuracy, speed and size.",
        discussion: """
            Reads MODEL_DIR/model.onnx, test.npz (input__input, labels) and calibration.npz (see
            scripts/train-digits.py). For each precision: top-1 accuracy on the test split, batch-1 latency
            (median), batch-64 throughput and the size of the saved plan. int8 is calibrated on the calibration
            split (entropy calibrator); int8+fp16 runs in float16 what int8 does not speed up (GPU only, as
            fp16).
            """
    )

    @Option(name: .customLong("model-dir"), help: "The folder with model.onnx, test.npz and calibration.npz.")
    var modelDirectory = "models/digits"

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "Seconds to time each engine at each batch size.")
    var seconds = 1.0

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
    }

    func run() throws {
        let folder = URL(fileURLWithPath: modelDirectory)
        let modelURL = folder.appendingPathComponent("model.onnx")
        guard FileManager.default.fileExists(atPath: modelURL.path) else {
            throw KilnError.io(
                "\(modelURL.path): no such file (run from the Kiln checkout, or pass --model-dir)")
        }
        let graph = try withErrorContext(modelURL.path) { try ONNXImporter.load(contentsOf: modelURL).graph }
        guard graph.inputs.count == 1, let input = graph.inputs.first, graph.outputs.count == 1 else {
            throw KilnError.invalidArgument("the demo model must have one input and one output")
        }
        let test = try Self.archive(folder.appendingPathComponent("test.npz"))
        guard let images = test["input__\(input.name)"] ?? test[input.name], let labels = test["labels"] else {
            throw KilnError.invalidArgument("test.npz needs input__\(input.name) and labels")
        }
        guard images.shape.count >= 2, images.shape[0] > 0, labels.count == images.shape[0] else {
            throw KilnError.invalidArgument(
                "test.npz: \(labels.count) labels for images of shape \(images.shape) (one label per image)")
        }
        let calibrationPath = folder.appendingPathComponent("calibration.npz").path
        let opened = try deviceOptions.make()
        var rows: [DemoResult] = []
        var skipped: [(String, String)] = []
        for precision in DemoPrecision.allCases {
            if let reason = precision.unavailable(on: opened) {
                skipped.append((precision.rawValue, reason))
                Console.line("\(precision.rawValue): skipped, \(reason)")
                continue
            }
            var config = BuilderConfig()
            if precision.int8 {
                config.int8 = Int8Config(
                    calibration: try CalibrationData.load(calibrationPath, inputs: graph.inputs, batch: 64))
            }
            if precision.half { config.half = HalfConfig(dtype: .float16) }
            let start = Date()
            // The build includes compiling the two batch sizes measured, so a GPU plan holds their kernels.
            let shapes = [1, 64].map {
                [BuildOptions.InputShape(name: input.name, dims: [$0] + images.shape.dropFirst())]
            }
            let engine = try withErrorContext(precision.rawValue) {
                let engine = try Builder.build(graph, device: opened, config: config)
                for set in shapes { try engine.prepare(inputShapes: try engine.orderedShapes(set)) }
                return engine
            }
            let buildSeconds = Date().timeIntervalSince(start)
            let plan = engine.plan(options: BuildOptions(shapes: shapes[1]))
            let size = try plan.encoded().count
            let weights = plan.graph.initializers.values.reduce(0) { $0 + $1.byteCount }
            let row = try DemoMeasurement(engine: engine, input: input.name, seconds: seconds)
                .measure(
                    precision.rawValue, images: images, labels: labels, buildSeconds: buildSeconds, size: size,
                    weights: weights)
            rows.append(row)
            Console.line(row.line)
        }
        if let reference = rows.first {
            for row in rows.dropFirst() {
                Console.line(
                    String(
                        format:
                            "%@ vs fp32: top-1 %+.2f points, %.2fx throughput, %.2fx latency, weights %.2fx smaller",
                        row.precision, (row.top1 - reference.top1) * 100, row.throughput / reference.throughput,
                        row.latencyMs / reference.latencyMs, Double(reference.weightBytes) / Double(row.weightBytes)))
            }
        }
        if let json {
            let summary = DemoSummary(
                model: modelURL.path, device: opened.properties.name, results: rows,
                skipped: skipped.map { .init(precision: $0.0, reason: $0.1) })
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do { try encoder.encode(summary).write(to: URL(fileURLWithPath: json)) } catch {
                throw KilnError.io("\(json): cannot write: \(error.localizedDescription)")
            }
        }
    }

    static func archive(_ url: URL) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KilnError.io("\(url.path): cannot read: \(error.localizedDescription)")
        }
        return Dictionary(try withErrorContext(url.path) { try NPZ.decode(data) }, uniquingKeysWith: { a, _ in a })
    }
}

/// The precisions the demo tries, in order.
enum DemoPrecision: String, CaseIterable {
    /// `int8+fp16`: int8 where it is faster, the other layers in float16 (`--int8 --fp16`).
    case fp32, fp16, int8
    case int8Fp16 = "int8+fp16"

    /// Why this device cannot run the precision, or nil when it can.
    func unavailable(on device: any Device) -> String? {
        switch self {
        case .fp32, .int8: nil
        case .fp16, .int8Fp16:
            device.properties.kind == "cpu"
                ? "the CPU backend has no fast float16 kernels (\(rawValue) needs a GPU)" : nil
        }
    }

    var int8: Bool { self == .int8 || self == .int8Fp16 }
    var half: Bool { self == .fp16 || self == .int8Fp16 }
}

/// Times one engine and scores it on the test split.
struct DemoMeasurement {
    let engine: Engine
    let input: String
    let seconds: Double

    func measure(
        _ precision: String, images: Tensor, labels: Tensor, buildSeconds: Double, size: Int, weights: Int
    ) throws -> DemoResult {
        let context = engine.makeContext()
        let truth = try labels.intValues()
        var correct = 0
        var seen = 0
        for batch in try CalibrationData.split([input: images], batch: 64) {
            let outputs = try context.run(batch.mapValues(Value.tensor))
            let logits = try outputs[engine.outputs[0].name]?.asTensor() ?? Tensor(zeros: .float32, shape: [0])
            let classes = logits.shape.last ?? 1
            let values = try logits.doubleValues()
            for row in 0..<(values.count / max(classes, 1)) {
                let scores = values[(row * classes)..<((row + 1) * classes)]
                let best = scores.indices.max { scores[$0] < scores[$1] }.map { $0 - row * classes }
                if best == truth[seen] { correct += 1 }
                seen += 1
            }
        }
        let batch = min(64, images.shape[0])
        let latency = try median(context, [input: .tensor(CalibrationData.slice(images, 0..<1))])
        let batchTime = try median(context, [input: .tensor(CalibrationData.slice(images, 0..<batch))])
        return DemoResult(
            precision: precision, top1: Double(correct) / Double(max(seen, 1)), testImages: seen,
            latencyMs: latency * 1000, throughput: Double(batch) / batchTime,
            engineBytes: size, weightBytes: weights, buildSeconds: buildSeconds)
    }

    /// The median seconds of one inference, after a warm-up, over `seconds` (at least 5 runs).
    private func median(_ context: ExecutionContext, _ feeds: [String: Value]) throws -> Double {
        for _ in 0..<3 { _ = try context.run(feeds) }
        var times: [Double] = []
        let end = Date().addingTimeInterval(seconds)
        while times.count < 5 || Date() < end {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try context.run(feeds)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        times.sort()
        return times[times.count / 2]
    }
}

struct DemoResult: Encodable {
    var precision: String
    var top1: Double
    var testImages: Int
    var latencyMs: Double
    /// Images per second at batch 64.
    var throughput: Double
    /// The saved plan: weights, graph and (on a GPU) the kernels compiled for batch 1 and 64.
    var engineBytes: Int
    var weightBytes: Int
    var buildSeconds: Double

    var line: String {
        String(
            format: "%@: top-1 %.2f%% on %d test images, latency %.3f ms (batch 1), %.0f images/s (batch 64), "
                + "plan %.1f KiB (weights %.1f KiB), built in %.2f s",
            precision, top1 * 100, testImages, latencyMs, throughput, Double(engineBytes) / 1024,
            Double(weightBytes) / 1024, buildSeconds)
    }
}

struct DemoSummary: Encodable {
    struct Skipped: Encodable {
        var precision: String
        var reason: String
    }
    var model: String
    var device: String
    var results: [DemoResult]
    var skipped: [Skipped]
}
