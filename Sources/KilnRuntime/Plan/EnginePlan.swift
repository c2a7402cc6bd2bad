import KilnIR

/// An engine as a plan file holds it: the optimized graph with its weights, the device code compiled for it,
/// and how and for which device it was built. `Engine.plan(options:)` makes one; `Engine(plan:device:)` runs
/// one without the ONNX file or a compiler; `encoded()` and `init(decoding:)` are the file format.
public struct EnginePlan: Sendable {
    /// The layout version this Kiln writes and reads.
    public static let formatVersion: UInt32 = 3

    public var kilnVersion: String
    public var device: DeviceFingerprint
    public var options: BuildOptions
    public var graph: Graph
    public var code: [CompiledCode]
    /// What one execution context needs for the shapes compiled at build time.
    public var memory: [MemoryReport]
    /// Tactics chosen by timing at build time, by layer signature; loading reuses them instead of timing.
    public var tactics: [String: String]
    /// The precision decisions of an int8 build, with the accuracy guard's measurements.
    public var precision: PrecisionReport?

    public init(
        kilnVersion: String = KilnVersion.string, device: DeviceFingerprint, options: BuildOptions, graph: Graph,
        code: [CompiledCode] = [], memory: [MemoryReport] = [], tactics: [String: String] = [:],
        precision: PrecisionReport? = nil
    ) {
        self.tactics = tactics
        self.precision = precision
        self.kilnVersion = kilnVersion
        self.device = device
        self.options = options
        self.graph = graph
        self.code = code
        self.memory = memory
    }
}

/// Device memory for one set of input shapes, planned when the engine was built.
public struct MemoryReport: Sendable, Hashable {
    public var shapes: [BuildOptions.InputShape]
    public var weightBytes: Int
    /// The activation arena after planning, and what one buffer per value would take.
    public var activationBytes: Int
    public var naiveActivationBytes: Int
    public var workspaceBytes: Int
    /// Kernel launches and library calls per inference.
    public var launches: Int

    public init(shapes: [BuildOptions.InputShape], report: EngineReport) {
        self.init(
            shapes: shapes, weightBytes: report.weightBytes, activationBytes: report.activationBytes,
            naiveActivationBytes: report.naiveActivationBytes, workspaceBytes: report.workspaceBytes,
            launches: report.launches)
    }

    public init(
        shapes: [BuildOptions.InputShape], weightBytes: Int, activationBytes: Int, naiveActivationBytes: Int,
        workspaceBytes: Int, launches: Int
    ) {
        self.shapes = shapes
        self.weightBytes = weightBytes
        self.activationBytes = activationBytes
        self.naiveActivationBytes = naiveActivationBytes
        self.workspaceBytes = workspaceBytes
        self.launches = launches
    }

    /// Activations and workspace: what each execution context allocates (weights are shared).
    public var perContextBytes: Int { activationBytes + workspaceBytes }
}

/// The build settings a plan records, so that loading it behaves as the build did.
public struct BuildOptions: Sendable, Hashable {
    public struct InputShape: Sendable, Hashable {
        public var name: String
        public var dims: [Int]
        public init(name: String, dims: [Int]) {
            self.name = name
            self.dims = dims
        }
    }

    public var optimize: Bool
    public var disabledPasses: Set<String>
    /// Float32 products may use TF32 tensor cores.
    public var tf32: Bool
    public var allowCPUFallback: Bool
    /// Input shapes compiled at build time (their device code is in the plan).
    public var shapes: [InputShape]
    /// How hard the builder searched for tactics: 0 = heuristics only, 5 = every candidate.
    public var level: Int
    /// The input shapes the engine accepts (see `ShapeProfile`); their opt, min and max shapes are compiled.
    public var profiles: [ShapeProfile] = []
    public static let defaultLevel = 3

    public init(
        optimize: Bool = true, disabledPasses: Set<String> = [], tf32: Bool = false, allowCPUFallback: Bool = false,
        shapes: [InputShape] = [], level: Int = BuildOptions.defaultLevel
    ) {
        self.level = level
        self.optimize = optimize
        self.disabledPasses = disabledPasses
        self.tf32 = tf32
        self.allowCPUFallback = allowCPUFallback
        self.shapes = shapes
    }
}
