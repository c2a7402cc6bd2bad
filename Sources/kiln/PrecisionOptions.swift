import ArgumentParser
import Foundation
import KilnIR
import KilnRuntime

/// Reduced precision for a build: float16 or bfloat16 mixed precision, int8 with calibration, the
/// calibration cache and the accuracy guard.
struct PrecisionOptions: ParsableArguments {
    @Flag(help: "Run the layers the device has float16 kernels for in float16 (tensor cores on a GPU).")
    var fp16 = false

    @Flag(help: "Run the layers the device has bfloat16 kernels for in bfloat16.")
    var bf16 = false

    @Option(help: "The engine's float inputs and outputs with --fp16/--bf16: float32 (the default) or the 16-bit type.")
    var ioType: String?

    @Flag(
        help:
            "Run convolutions and matrix products in int8 (post-training quantization; needs --calibration or a covering --calibration-cache); with --fp16 or --bf16 the other layers run in 16 bits."
    )
    var int8 = false

    @Option(help: "Calibration data: one .npz (arrays input__NAME or NAME) or a folder of .npz/.npy batches.")
    var calibration: String?

    @Option(help: "entropy (KL divergence over 2048 bins, the default), minmax or percentile.")
    var calibrator = "entropy"

    @Option(help: "The percentile the percentile calibrator keeps.")
    var percentile = 99.99

    @Option(help: "A text file of calibrated ranges: read when it covers the model, else written after calibrating.")
    var calibrationCache: String?

    @Option(help: "Samples per calibration batch.")
    var calibrationBatch = 32

    @Option(
        help:
            "Data the accuracy guard measures on (int8 default: the calibration data; 16-bit: none); same forms as --calibration."
    )
    var validation: String?

    @Option(
        help:
            "Largest relative output error against float32 to accept; the most sensitive layers move to higher precision (out of int8; from 16 bits to float32) until the engine is within it."
    )
    var accuracyTolerance: Double?

    @Flag(help: "Also report each int8 layer's own output error against float32.")
    var perLayer = false

    var isSet: Bool { int8 || fp16 || bf16 || ioType != nil || hasInt8Settings || hasGuardSettings }
    private var hasInt8Settings: Bool { calibration != nil || calibrationCache != nil || perLayer }
    private var hasGuardSettings: Bool { validation != nil || accuracyTolerance != nil }

    /// float16 or bfloat16 when asked for.
    var halfType: DType? { fp16 ? .float16 : bf16 ? .bfloat16 : nil }

    func validate() throws {
        if calibrationBatch < 1 { throw ValidationError("--calibration-batch must be at least 1") }
        if let accuracyTolerance, !(accuracyTolerance >= 0) {
            throw ValidationError("--accuracy-tolerance must be a non-negative number")
        }
    }

    /// The 16-bit settings for an engine with these inputs, or nil. With --int8 too, the int8 settings hold the
    /// accuracy guard's (`int8Config`), and the 16-bit float is where the layers left out of int8 run.
    func halfConfig(inputs: [GraphValue]) throws -> HalfConfig? {
        guard let dtype = halfType else { return nil }
        if hasInt8Settings, !int8 {
            throw KilnError.invalidArgument("--calibration, --calibration-cache and --per-layer go with --int8")
        }
        var io = DType.float32
        switch ioType?.lowercased() {
        case nil, "float32", "fp32", "float": break
        case "float16", "fp16", "half": io = .float16
        case "bfloat16", "bf16": io = .bfloat16
        case let other?: throw KilnError.invalidArgument("--io-type \(other): use float32, float16 or bfloat16")
        }
        guard io == .float32 || io == dtype else {
            throw KilnError.invalidArgument(
                "--io-type \(io.onnxName) with a \(dtype.onnxName) build: use float32 or \(dtype.onnxName)")
        }
        var config = HalfConfig(dtype: dtype, ioType: io)
        if !int8 {
            config.validation = try validation.map {
                try CalibrationData.load($0, inputs: inputs, batch: calibrationBatch)
            }
            config.tolerance = accuracyTolerance
        }
        config.log = { line in Console.line(line) }
        return config
    }

    /// The int8 settings for an engine with these inputs, or nil for float32.
    func int8Config(inputs: [GraphValue]) throws -> Int8Config? {
        if fp16, bf16 { throw KilnError.invalidArgument("choose one of --fp16 and --bf16") }
        if ioType != nil, halfType == nil { throw KilnError.invalidArgument("--io-type goes with --fp16 or --bf16") }
        guard int8 else {
            if hasInt8Settings || (halfType == nil && hasGuardSettings) {
                throw KilnError.invalidArgument(
                    "--calibration, --calibration-cache, --validation, --accuracy-tolerance and --per-layer go with --int8"
                        + " (--validation and --accuracy-tolerance also with --fp16/--bf16)")
            }
            return nil
        }
        let method = try CalibrationMethod(name: calibrator, percentile: percentile)
        if calibration == nil, calibrationCache == nil {
            throw KilnError.invalidArgument("--int8 needs --calibration DATA or --calibration-cache FILE")
        }
        let batches =
            try calibration.map { try CalibrationData.load($0, inputs: inputs, batch: calibrationBatch) } ?? []
        var config = Int8Config(
            calibration: batches,
            validation: try validation.map { try CalibrationData.load($0, inputs: inputs, batch: calibrationBatch) },
            method: method, cache: calibrationCache.map { URL(fileURLWithPath: $0) }, tolerance: accuracyTolerance,
            perLayer: perLayer)
        let bar = ProgressBar(enabled: isatty(STDOUT_FILENO) != 0)
        config.progress = { stage, done, total in bar.update(stage, done, total) }
        config.log = { line in
            bar.clear()
            Console.line(line)
        }
        return config
    }
}

/// A progress bar on one terminal line (`calibration [#####.....] 12/32`), safe to update from any thread.
final class ProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private let lock = NSLock()

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ stage: String, _ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let width = 30
        let filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        lock.lock()
        FileHandle.standardOutput.write(Data("\r\(stage) [\(bar)] \(done)/\(total)\u{1B}[K".utf8))
        if done == total { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        lock.unlock()
    }

    func clear() {
        guard enabled else { return }
        lock.lock()
        FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
        lock.unlock()
    }
}
