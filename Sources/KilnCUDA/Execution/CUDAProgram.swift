import Foundation
import KilnIR
import KilnRuntime

/// A graph compiled for one GPU: weights uploaded once, one `CUDAShapeProgram` per distinct set of input
/// shapes (built on first use, shared by every context), and a default context for runs through the engine
/// itself. Runs take and return host values.
final class CUDAProgram: GraphExecutable, @unchecked Sendable {
    let graph: Graph
    let device: CUDADevice
    private let lock = NSLock()
    private var shapes: [[[Int]]: CUDAShapeProgram] = [:]
    private var weights: [String: [UploadedWeight]] = [:]
    private var defaultContext: CUDAExecution?

    init(graph: Graph, device: CUDADevice) throws {
        self.graph = graph
        self.device = device
    }

    func makeContextExecutable() throws -> any GraphExecutable { CUDAExecution(program: self) }

    private func context() -> CUDAExecution {
        lock.withLock {
            if let defaultContext { return defaultContext }
            let made = CUDAExecution(program: self)
            defaultContext = made
            return made
        }
    }

    func run(_ inputs: [Value], outer: ValueScope?) throws -> [Value] { try context().run(inputs, outer: outer) }
    func runTimed(_ inputs: [Value]) throws -> (outputs: [Value], timings: RunTimings) {
        try context().runTimed(inputs)
    }
    func profile(_ inputs: [Value]) throws -> [LayerTiming] { try context().profile(inputs) }

    func describe(inputShapes: [[Int]]) throws -> EngineReport { try shape(for: inputShapes).report }

    func prepare(inputShapes: [[Int]]) throws { _ = try shape(for: inputShapes) }

    /// The tactic keys of the library calls of every shape built so far.
    var tacticKeys: Set<String>? {
        lock.withLock {
            Set(
                shapes.values.flatMap { shape in
                    shape.launchTacticKeys
                        + shape.steps.compactMap { step -> String? in
                            if case .library(let runner) = step.work { return runner.tacticKey }
                            return nil
                        }
                })
        }
    }

    /// The cubins of every shape built so far, by `CUDASource.planName`: the lowerings' kernels and those
    /// chosen for library steps.
    var compiledCode: [CompiledCode] {
        let sources = lock.withLock {
            shapes.values.flatMap { shape in
                shape.nodes.flatMap { $0.lowering?.launchSources ?? [] }
                    + shape.steps.compactMap { step -> CUDASource? in
                        guard case .library(let runner) = step.work else { return nil }
                        return runner.kernel?.launch.source
                    }
            }
        }
        var code: [String: [UInt8]] = [:]
        for source in sources where code[source.planName] == nil {
            if let image = device.modules.image(for: source) { code[source.planName] = image }
        }
        return code.sorted { $0.key < $1.key }.map { CompiledCode(name: $0.key, bytes: $0.value) }
    }

    /// The program for these input shapes, building it (and uploading the weights it needs) on first use.
    /// Builds are serialized: a second context asking for a shape being built waits for it. After
    /// `finishBuilding`, a new shape times nothing: its library steps follow the nearest shape built before.
    func shape(for inputShapes: [[Int]]) throws -> CUDAShapeProgram {
        lock.lock()
        defer { lock.unlock() }
        if let shape = shapes[inputShapes] { return shape }
        var builder = CUDAPlanBuilder(program: self, inputShapes: inputShapes)
        if let built {
            builder.afterBuild = true
            builder.reference = Self.nearest(to: inputShapes, among: built).flatMap { shapes[$0] }
        }
        let shape = try builder.build()
        shapes[inputShapes] = shape
        return shape
    }

    /// The shapes built before `finishBuilding` (nil until then).
    private var built: [[[Int]]]?

    func finishBuilding() {
        lock.withLock { built = built ?? Array(shapes.keys) }
    }

    /// The candidate with the same ranks closest to `shapes`: the least sum over inputs of the ratio of
    /// element counts, larger over smaller.
    static func nearest(to shapes: [[Int]], among candidates: [[[Int]]]) -> [[Int]]? {
        func size(_ dims: [Int]) -> Double { Double(max(1, Tensor.elementCount(dims))) }
        func distance(_ other: [[Int]]) -> Double? {
            guard other.map(\.count) == shapes.map(\.count) else { return nil }
            var sum = 0.0
            for (a, b) in zip(other.map(size), shapes.map(size)) { sum += max(a, b) / min(a, b) }
            return sum
        }
        var best: (shapes: [[Int]], distance: Double)?
        for candidate in candidates.sorted(by: { $0.description < $1.description }) {
            guard let d = distance(candidate), best.map({ d < $0.distance }) ?? true else { continue }
            best = (candidate, d)
        }
        return best?.shapes
    }

    /// The device copy of initializer `name`; called with the lock held, from the plan builder. Shapes share
    /// a copy only when it holds the same values: a constant folded while specializing may keep its name and
    /// differ per shape (a batch-sized expansion), so each distinct value of a name gets a copy of its own.
    func weight(_ name: String, _ tensor: Tensor) throws -> DeviceBuffer {
        if let copy = weights[name, default: []].first(where: { $0.holds(tensor) }) { return copy.buffer }
        let buffer = try withErrorContext("uploading weight '\(name)' (\(tensor.type))") {
            try device.upload(tensor)
        }
        weights[name, default: []].append(UploadedWeight(tensor: tensor, buffer: buffer))
        return buffer
    }
}

/// A host tensor and its device copy.
private struct UploadedWeight {
    let tensor: Tensor
    let buffer: DeviceBuffer

    /// Whether the copy holds `other`'s values: the same storage, or equal type and bytes.
    func holds(_ other: Tensor) -> Bool {
        guard tensor.dtype == other.dtype, tensor.shape == other.shape else { return false }
        if tensor.storage === other.storage { return true }
        return memcmp(tensor.storage.bytes, other.storage.bytes, tensor.byteCount) == 0
    }
}

/// One execution context of a CUDA engine: a plan (arena, workspace, stream) per input shape it has run.
final class CUDAExecution: GraphExecutable, @unchecked Sendable {
    let program: CUDAProgram
    private let lock = NSLock()
    private var plans: [[[Int]]: CUDAPlan] = [:]

    init(program: CUDAProgram) { self.program = program }

    func run(_ inputs: [Value], outer: ValueScope?) throws -> [Value] { try runTimed(inputs).outputs }

    func runTimed(_ inputs: [Value]) throws -> (outputs: [Value], timings: RunTimings) {
        let tensors = try Self.tensors(inputs)
        let result = try plan(for: tensors.map(\.shape)).run(tensors)
        return (result.outputs.map(Value.tensor), result.timings)
    }

    func profile(_ inputs: [Value]) throws -> [LayerTiming] {
        let tensors = try Self.tensors(inputs)
        return try plan(for: tensors.map(\.shape)).profile(tensors)
    }

    func describe(inputShapes: [[Int]]) throws -> EngineReport { try program.describe(inputShapes: inputShapes) }

    private func plan(for shapes: [[Int]]) throws -> CUDAPlan {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[shapes] { return plan }
        let plan = try program.shape(for: shapes).bind()
        plans[shapes] = plan
        return plan
    }

    private static func tensors(_ inputs: [Value]) throws -> [Tensor] {
        try inputs.map { value in
            guard case .tensor(let tensor) = value else {
                throw KilnError.unsupported("the CUDA backend takes tensor inputs, got a \(value.kindName)")
            }
            return tensor
        }
    }
}

extension CUDADevice {
    /// A device buffer holding `tensor`'s bytes (synchronously copied).
    func upload(_ tensor: Tensor) throws -> DeviceBuffer {
        guard tensor.dtype != .string else {
            throw KilnError.unsupported("string tensors cannot live in device memory")
        }
        let buffer = try context.allocate(bytes: max(tensor.byteCount, 1))
        if tensor.byteCount > 0 {
            try uploadStream.copy(toDevice: buffer.address, from: tensor.storage.bytes, bytes: tensor.byteCount)
            try uploadStream.synchronize()
        }
        return buffer
    }
}
