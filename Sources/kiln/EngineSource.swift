import ArgumentParser
import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

/// A command's engine: loaded from a plan file as it was built, or built in memory from an ONNX model with the
/// command's device and optimizer options.
struct EngineSource {
    let engine: Engine
    let device: any Device
    /// The file's name without its extension, for reports.
    let name: String
    /// The plan, when the engine came from one.
    let plan: EnginePlan?

    static func load(
        _ path: String, deviceOptions: DeviceOptions, optimizerOptions: OptimizerOptions,
        precisionOptions: PrecisionOptions? = nil, cudaGraphs: Bool = false
    ) throws -> EngineSource {
        let url = ModelPath.resolve(path)
        let name = url.deletingPathExtension().lastPathComponent
        if let plan = try readPlan(url) {
            if precisionOptions?.isSet == true {
                throw KilnError.invalidArgument(
                    "--int8 and its options apply when building; a plan keeps its precision")
            }
            if optimizerOptions.isSet {
                throw KilnError.invalidArgument(
                    "--no-fuse and --passes apply when building; a plan is already optimized")
            }
            let device = try deviceOptions.make(for: plan, cudaGraphs: cudaGraphs)
            let engine = try withErrorContext(path) { try Engine(plan: plan, device: device) }
            return EngineSource(engine: engine, device: device, name: name, plan: plan)
        }
        let imported = try withErrorContext(path) { try ONNXImporter.load(contentsOf: url) }
        let device = try deviceOptions.make(
            cudaGraphs: cudaGraphs, disabledPasses: try optimizerOptions.disabledPasses())
        let engine = try withErrorContext(path) {
            var config = try optimizerOptions.builderConfig()
            config.int8 = try precisionOptions?.int8Config(inputs: imported.graph.inputs)
            config.half = try precisionOptions?.halfConfig(inputs: imported.graph.inputs)
            return try Builder.build(imported.graph, device: device, config: config)
        }
        return EngineSource(engine: engine, device: device, name: name, plan: nil)
    }

    /// The plan in `url`, or nil when the file is not a plan (an ONNX model).
    static func readPlan(_ url: URL) throws -> EnginePlan? {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        let start = try? handle.read(upToCount: 4)
        try? handle.close()
        guard let start, EnginePlan.looksLikePlan(start) else { return nil }
        return try withErrorContext(url.path) { try EnginePlan(contentsOf: url) }
    }
}

extension OptimizerOptions {
    /// Whether the user chose passes (which only a build uses).
    var isSet: Bool { !noFuse.isEmpty || passes != nil }
}
