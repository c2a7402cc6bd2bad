import KilnIR

/// An optimized graph compiled for one device. Immutable and shareable; inferences run through
/// `ExecutionContext`s.
public final class Engine: Sendable {
    public let graph: Graph
    public let device: any Device
    let program: any GraphExecutable
    /// The input shapes the engine accepts; empty: any shape its graph allows.
    public let profiles: [ShapeProfile]
    /// How the builder chose each layer's precision (int8 builds); nil for float32 engines.
    public let precision: PrecisionReport?

    init(graph: Graph, device: any Device, profiles: [ShapeProfile] = [], precision: PrecisionReport? = nil) throws {
        for profile in profiles { try profile.check(against: graph.inputs) }
        self.precision = precision
        self.graph = graph
        self.device = device
        self.profiles = profiles
        program = try device.compile(graph)
    }

    public var inputs: [GraphValue] { graph.inputs }
    public var outputs: [GraphValue] { graph.outputs }

    public func makeContext() -> ExecutionContext { ExecutionContext(engine: self) }

    /// `value` copied into the host memory the engine's device uploads from fastest (page-locked on a GPU),
    /// for inputs that many runs reuse: their upload then runs at the bus's speed. The value itself on the CPU.
    public func pinnedCopy(of value: Value) throws -> Value {
        guard case .tensor(let tensor) = value else { return value }
        return .tensor(try device.pinnedCopy(of: tensor))
    }
}

/// Runs inferences of one engine. Not shared across threads; make one per thread. Each context owns its
/// activation memory and (on a GPU) its stream, allocated on its first run, so contexts of one engine run
/// concurrently.
public final class ExecutionContext {
    public let engine: Engine
    private var executable: (any GraphExecutable)?

    init(engine: Engine) { self.engine = engine }

    private func program() throws -> any GraphExecutable {
        if let executable { return executable }
        let made = try engine.program.makeContextExecutable()
        executable = made
        return made
    }

    /// Runs one inference. Every graph input must be given, with its declared dtype and shape; errors name
    /// the tensor.
    public func run(_ inputs: [String: Value]) throws -> [String: Value] {
        try runTimed(inputs).outputs
    }

    /// One inference, with where its time went.
    public func runTimed(_ inputs: [String: Value]) throws -> (outputs: [String: Value], timings: RunTimings) {
        let ordered = try orderedInputs(inputs)
        let (results, timings) = try program().runTimed(ordered)
        // A graph may list one value as two outputs; the dictionary keeps it once.
        let named = Dictionary(zip(engine.graph.outputs.map(\.name), results), uniquingKeysWith: { first, _ in first })
        return (named, timings)
    }

    /// One inference timed layer by layer.
    public func profile(_ inputs: [String: Value]) throws -> [LayerTiming] {
        try program().profile(try orderedInputs(inputs))
    }

    /// The layers as the device runs them for these inputs' shapes.
    public func report(for inputs: [String: Value]) throws -> EngineReport {
        let shapes = try orderedInputs(inputs).map { value -> [Int] in
            guard case .tensor(let t) = value else { return [] }
            return t.shape
        }
        return try engine.describe(inputShapes: shapes)
    }

    private func orderedInputs(_ inputs: [String: Value]) throws -> [Value] {
        let graph = engine.graph
        let unknown = Set(inputs.keys).subtracting(graph.inputs.map(\.name))
        if let name = unknown.sorted().first {
            throw KilnError.invalidArgument(
                "the model has no input '\(name)' (inputs: \(graph.inputs.map(\.name).joined(separator: ", ")))")
        }
        var symbols: [String: Int] = [:]
        let ordered = try graph.inputs.map { info -> Value in
            guard let value = inputs[info.name] else {
                throw KilnError.invalidArgument("missing value for input '\(info.name)'")
            }
            try InputCheck.check(value, against: info, symbols: &symbols)
            return value
        }
        try checkProfiles(ordered)
        return ordered
    }
}

extension ExecutionContext {
    /// A shape outside every profile is an error naming the input and the ranges, never a silent rebuild.
    fileprivate func checkProfiles(_ ordered: [Value]) throws {
        let profiles = engine.profiles
        guard !profiles.isEmpty else { return }
        var shapes: [String: [Int]] = [:]
        for (info, value) in zip(engine.graph.inputs, ordered) {
            if case .tensor(let tensor) = value { shapes[info.name] = tensor.shape }
        }
        guard !profiles.contains(where: { $0.contains(shapes) }) else { return }
        let outside = profiles[0].inputs.first { range in !(shapes[range.name].map(range.contains) ?? false) }
        let name = outside?.name ?? profiles[0].inputs.first?.name ?? "?"
        throw KilnError.shapeMismatch(
            "input '\(name)' has shape \(shapes[name] ?? []), outside every profile of this engine ("
                + profiles.map { $0.description }.joined(separator: "; ") + "): rebuild with a profile that covers it")
    }
}

enum InputCheck {
    /// Checks one input value against its declared type; symbolic dimensions must agree across inputs.
    static func check(_ value: Value, against info: GraphValue, symbols: inout [String: Int]) throws {
        guard case .tensor(let declared)? = info.type else { return }
        guard case .tensor(let tensor) = value else {
            throw KilnError.typeMismatch("input '\(info.name)': expected a tensor, got a \(value.kindName)")
        }
        guard tensor.dtype == declared.dtype else {
            throw KilnError.typeMismatch(
                "input '\(info.name)': expected dtype \(declared.dtype.onnxName), got \(tensor.dtype.onnxName)")
        }
        guard let dims = declared.shape else { return }
        let mismatch = KilnError.shapeMismatch("input '\(info.name)': expected shape \(declared), got \(tensor.shape)")
        guard dims.count == tensor.shape.count else { throw mismatch }
        for (dim, actual) in zip(dims, tensor.shape) {
            switch dim {
            case .value(let v): guard v == actual else { throw mismatch }
            case .symbol(let s):
                if let bound = symbols[s], bound != actual {
                    throw KilnError.shapeMismatch(
                        "input '\(info.name)': dimension '\(s)' is \(actual) here but \(bound) in another input")
                }
                symbols[s] = actual
            case .unknown: break
            }
        }
    }
}
