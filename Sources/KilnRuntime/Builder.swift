import KilnIR
import KilnOptimizer

/// How to build an engine.
public struct BuilderConfig: Sendable {
    /// Run the optimizer's standard pipeline before compiling.
    public var optimize: Bool = true
    /// Passes of the standard pipeline to leave out (by name).
    public var disabledPasses: Set<String> = []
    /// Hears the fusions the passes considered and did not make (`PassContext.rejected`).
    public var rejectedFusions: (@Sendable (_ node: String, _ reason: String) -> Void)?
    /// The input shapes the engine must accept; each profile's opt, min and max shapes are compiled at build
    /// time (opt first, where tactics are timed).
    public var profiles: [ShapeProfile] = []
    /// Build in int8 (post-training quantization with calibration); nil: float32.
    public var int8: Int8Config?
    /// Build in mixed precision, float16 or bfloat16 where the device has kernels for it; nil: float32.
    public var half: HalfConfig?

    public init(
        optimize: Bool = true, disabledPasses: Set<String> = [],
        rejectedFusions: (@Sendable (_ node: String, _ reason: String) -> Void)? = nil
    ) {
        self.optimize = optimize
        self.disabledPasses = disabledPasses
        self.rejectedFusions = rejectedFusions
    }
}

/// Turns a graph into an engine for one device: verify, infer types, optimize, compile kernels.
public enum Builder {
    public static func build(_ graph: Graph, device: any Device, config: BuilderConfig = .init()) throws -> Engine {
        var optimized = try optimize(graph, device: device, config: config)
        var precision: PrecisionReport?
        if let half = config.half { try HalfPlanner.checkDevice(device, dtype: half.dtype, graph: optimized) }
        if let int8 = config.int8 {
            // int8 first; with `half` too the layers left out of int8 run in the 16-bit float.
            let chaining = config.optimize && !config.disabledPasses.contains(Int8Chaining.name)
            (optimized, precision) = try Int8Planner(
                config: int8, device: device, half: config.half, chaining: chaining,
                layout: { try applyDeviceLayout(&$0, device: device, config: config) }
            ).run(optimized)
        } else if let half = config.half {
            (optimized, precision) = try HalfPlanner(config: half, device: device).run(optimized)
        }
        try applyDeviceLayout(&optimized, device: device, config: config)
        let engine = try Engine(graph: optimized, device: device, profiles: config.profiles, precision: precision)
        for profile in config.profiles {
            for set in profile.compiledShapeSets(graphInputs: engine.inputs) {
                try engine.prepare(inputShapes: try engine.orderedShapes(set))
            }
        }
        return engine
    }

    /// The passes that store values as the device reads them fastest, after the precision passes: channels-last
    /// regions, weights as rows, transposed inputs read as they are, global pools reading a chain's quantized
    /// values (each unless `config` leaves it out).
    static func applyDeviceLayout(_ graph: inout Graph, device: any Device, config: BuilderConfig) throws {
        guard config.optimize else { return }
        if !config.disabledPasses.contains(ChannelsLastLayout.name) {
            try ChannelsLastLayout(
                runsChannelsLast: { device.runsChannelsLast($0, input: $1) },
                readsChannelsFirst: { device.readsChannelsFirst($0, input: $1, weights: $2) }
            ).apply(&graph)
        }
        if !config.disabledPasses.contains(WeightRows.name) {
            WeightRows(wants: { device.takesWeightRows($0, dtype: $1) }).apply(&graph)
        }
        if !config.disabledPasses.contains(TransposedInput.name) {
            try TransposedInput(wants: { device.takesTransposedInput($0, input: $1, outputChannels: $2) })
                .apply(&graph)
        }
        if !config.disabledPasses.contains(DequantizedPooling.name) { try DequantizedPooling().apply(&graph) }
    }

    /// The graph an engine built with `config` runs: verified, typed and (unless `config.optimize` is off)
    /// optimized, with constants folded on `device`.
    public static func optimize(_ graph: Graph, device: any Device, config: BuilderConfig = .init()) throws -> Graph {
        var graph = graph
        try graph.verify()
        try graph.inferTypes()
        if config.optimize {
            let evaluator = DeviceEvaluator(device: device)
            let context = PassContext(
                evaluate: { node, inputs in try evaluator.evaluate(node, inputs) }, rejected: config.rejectedFusions)
            try Pipeline.standard.disabling(config.disabledPasses).run(&graph, context)
        }
        return graph
    }
}

/// Runs single nodes on a device; the optimizer's constant folding uses it without importing a backend.
struct DeviceEvaluator: Sendable {
    let device: any Device

    func evaluate(_ node: Node, _ inputs: [Value?]) throws -> [Value] {
        let kernel = try device.makeKernel(node, subgraphs: DeviceSubgraphCompiler(device: device))
        return try kernel.execute(inputs, KernelContext(scope: ValueScope(), threads: device.properties.threads))
    }
}
