import Dispatch
import KilnIR

/// What a device reports about itself.
public struct DeviceProperties: Sendable, Hashable {
    public var name: String
    public var kind: String
    public var threads: Int

    public init(name: String, kind: String, threads: Int) {
        self.name = name
        self.kind = kind
        self.threads = threads
    }
}

/// A place that runs layers: the CPU, one GPU. The optimizer and builder ask it what it supports; backends
/// implement layer kinds, never ONNX operators.
public protocol Device: AnyObject, Sendable {
    var properties: DeviceProperties { get }
    func supports(_ node: Node) -> Bool
    /// Whether this device runs `node` with its float operands stored as `dtype` (float16 or bfloat16) on
    /// fast kernels; mixed-precision builds keep every other layer float32. None by default.
    func runsInHalfPrecision(_ node: Node, dtype: DType) -> Bool
    /// Whether this device runs `node` (a 2-D convolution or pooling whose first input, stored channels-first,
    /// is `input`) faster with its activations stored channels-last (`ChannelsLastLayout`). Never by default.
    func runsChannelsLast(_ node: Node, input: TensorType) -> Bool
    /// Whether this device's channels-last kernel for `node` (a chained int8 convolution whose input and
    /// weights, channels-first, are `input` and `weights`) reads that input channels-first, so no transpose
    /// goes in front (`ChannelsLastLayout`). Never by default.
    func readsChannelsFirst(_ node: Node, input: TensorType, weights: TensorType) -> Bool
    /// Whether this device runs `node` (a matMul whose B is a constant `[K, N]` of `dtype`) faster with B
    /// stored as `[N, K]` (`WeightRows`). Never by default.
    func takesWeightRows(_ node: Node, dtype: DType) -> Bool
    /// Whether this device runs `node` (a channels-last 1×1 convolution with `outputChannels` outputs whose
    /// input arrives transposed from the channels-first `input`) faster as a product reading that input as
    /// it is (`TransposedInput`). Never by default.
    func takesTransposedInput(_ node: Node, input: TensorType, outputChannels: Int) -> Bool
    /// Whether this device runs `node` (a 2-D convolution, float or int8, whose input is `input` and weights
    /// `weights`, both channels-first) as an int8 convolution whose input, residual and output stay int8 and
    /// channels-last (`Int8Chaining`). Never by default.
    func chainsInt8(_ node: Node, input: TensorType, weights: TensorType) -> Bool
    /// Whether this device runs `node` (a float convolution or matMul the int8 pass can quantize, whose input is
    /// `input` and weights `weights`, channels-first) faster in int8 than in the 16-bit float `half`, with int8
    /// chains on or off (`chained`). An int8 + 16-bit build leaves the others in 16 bits. Always by default.
    func int8Beats(_ node: Node, input: TensorType, weights: TensorType, half: DType, chained: Bool) -> Bool
    func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel
    /// A copy of `tensor` in the host memory this device transfers from fastest (page-locked on a GPU), for
    /// inputs given to many runs; the tensor itself by default.
    func pinnedCopy(of tensor: Tensor) throws -> Tensor
    /// Compiles a whole graph. The default runs one host kernel per node (`CompiledGraph`); a device whose
    /// tensors live in its own memory returns its own program, which takes and returns host values.
    func compile(_ graph: Graph) throws -> any GraphExecutable
    /// What a plan built here records, and what a plan must match to load here.
    var fingerprint: DeviceFingerprint { get }
    /// Makes code compiled earlier (a plan's) available to `compile`, so that it need not compile it again.
    func preload(_ code: [CompiledCode]) throws
    /// The tactics this device chose by timing so far, by layer signature (see `TimingCache`).
    var tactics: [String: String] { get }
    /// Tactics chosen earlier (a plan's or a timing cache's): a layer with a known signature is not timed.
    func preloadTactics(_ tactics: [String: String])
}

extension Device {
    public func compile(_ graph: Graph) throws -> any GraphExecutable {
        try CompiledGraph(graph: graph, device: self)
    }

    public var fingerprint: DeviceFingerprint {
        DeviceFingerprint(
            kind: properties.kind, name: properties.name, architecture: DeviceFingerprint.hostArchitecture)
    }

    public var tactics: [String: String] { [:] }

    public func runsInHalfPrecision(_ node: Node, dtype: DType) -> Bool { false }

    public func runsChannelsLast(_ node: Node, input: TensorType) -> Bool { false }

    public func readsChannelsFirst(_ node: Node, input: TensorType, weights: TensorType) -> Bool { false }

    public func takesWeightRows(_ node: Node, dtype: DType) -> Bool { false }

    public func takesTransposedInput(_ node: Node, input: TensorType, outputChannels: Int) -> Bool { false }

    public func chainsInt8(_ node: Node, input: TensorType, weights: TensorType) -> Bool { false }

    public func int8Beats(_ node: Node, input: TensorType, weights: TensorType, half: DType, chained: Bool) -> Bool {
        true
    }

    public func pinnedCopy(of tensor: Tensor) throws -> Tensor { tensor }

    public func preloadTactics(_ tactics: [String: String]) {}

    public func preload(_ code: [CompiledCode]) throws {
        guard code.isEmpty else {
            throw KilnError.invalidPlan("the plan holds compiled code, which a \(properties.kind) device does not run")
        }
    }
}

/// A compiled graph: runs on host values given in graph-input order and returns graph outputs in order.
public protocol GraphExecutable: Sendable {
    func run(_ inputs: [Value], outer: ValueScope?) throws -> [Value]
    /// One inference with its time split into upload, compute and download.
    func runTimed(_ inputs: [Value]) throws -> (outputs: [Value], timings: RunTimings)
    /// One inference timed layer by layer (slower than `run`: each layer is waited for).
    func profile(_ inputs: [Value]) throws -> [LayerTiming]
    /// The layers as the device runs them for these input shapes.
    func describe(inputShapes: [[Int]]) throws -> EngineReport
    /// Compiles everything these input shapes need now rather than on the first run.
    func prepare(inputShapes: [[Int]]) throws
    /// Ends the build (a loaded plan's shapes are compiled): a shape compiled on first use after this times
    /// no tactic, it takes the choices known or made at the nearest shape compiled before.
    func finishBuilding()
    /// The device code compiled so far, for a plan file.
    var compiledCode: [CompiledCode] { get }
    /// The keys of the device tactics this program's layers use (nil: it cannot tell, keep them all).
    var tacticKeys: Set<String>? { get }
    /// What one execution context runs: the same executable where runs share nothing mutable (the CPU), or
    /// one with its own device memory and stream (a GPU), so that contexts run concurrently.
    func makeContextExecutable() throws -> any GraphExecutable
}

extension GraphExecutable {
    public func runTimed(_ inputs: [Value]) throws -> (outputs: [Value], timings: RunTimings) {
        let start = DispatchTime.now().uptimeNanoseconds
        let outputs = try run(inputs, outer: nil)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return (outputs, RunTimings(compute: elapsed))
    }

    public func profile(_ inputs: [Value]) throws -> [LayerTiming] {
        throw KilnError.unsupported("this device does not profile layers")
    }

    public func describe(inputShapes: [[Int]]) throws -> EngineReport {
        throw KilnError.unsupported("this device does not describe compiled engines")
    }

    public func prepare(inputShapes: [[Int]]) throws {}
    public func finishBuilding() {}

    public var compiledCode: [CompiledCode] { [] }

    public var tacticKeys: Set<String>? { nil }

    public func makeContextExecutable() throws -> any GraphExecutable { self }
}

/// Where the time of one inference went, in milliseconds.
public struct RunTimings: Sendable, Hashable {
    /// Copying inputs to the device (0 on the CPU).
    public var upload: Double
    public var compute: Double
    /// Copying outputs back (0 on the CPU).
    public var download: Double

    public init(upload: Double = 0, compute: Double, download: Double = 0) {
        self.upload = upload
        self.compute = compute
        self.download = download
    }

    public var total: Double { upload + compute + download }
}

/// The time one engine layer took in a profiling run.
public struct LayerTiming: Sendable, Hashable {
    public var name: String
    public var kind: LayerKind
    public var milliseconds: Double

    public init(name: String, kind: LayerKind, milliseconds: Double) {
        self.name = name
        self.kind = kind
        self.milliseconds = milliseconds
    }
}

/// What a compiled engine looks like for one set of input shapes: its layers as the device runs them.
public struct EngineReport: Sendable {
    public struct Layer: Sendable {
        public var name: String
        public var kind: LayerKind
        /// How the device runs it (`cuda: 2 launches`, `cublasLt`, `cpu fallback: reason`).
        public var implementation: String

        public init(name: String, kind: LayerKind, implementation: String) {
            self.name = name
            self.kind = kind
            self.implementation = implementation
        }
    }

    public var layers: [Layer]
    /// Device bytes for activations after planning, and one buffer per value.
    public var activationBytes: Int
    public var naiveActivationBytes: Int
    public var weightBytes: Int
    /// Kernel launches and library calls per inference.
    public var launches: Int
    /// Scratch memory of library calls (cuBLASLt, cuDNN), one per context.
    public var workspaceBytes: Int

    public init(
        layers: [Layer], activationBytes: Int, naiveActivationBytes: Int, weightBytes: Int, launches: Int,
        workspaceBytes: Int = 0
    ) {
        self.layers = layers
        self.activationBytes = activationBytes
        self.naiveActivationBytes = naiveActivationBytes
        self.weightBytes = weightBytes
        self.launches = launches
        self.workspaceBytes = workspaceBytes
    }
}
