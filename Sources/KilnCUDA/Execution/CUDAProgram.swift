import Foundation
import KilnIR
import KilnRuntime

/// A graph compiled for one GPU: weights uploaded once, and one `CUDAPlan` per distinct set of input shapes,
/// built on first use. Runs take and return host values.
final class CUDAProgram: GraphExecutable, @unchecked Sendable {
    let graph: Graph
    let device: CUDADevice
    private let lock = NSLock()
    private var plans: [[[Int]]: CUDAPlan] = [:]
    private var weights: [String: DeviceBuffer] = [:]

    init(graph: Graph, device: CUDADevice) throws {
        self.graph = graph
        self.device = device
    }

    func run(_ inputs: [Value], outer: ValueScope?) throws -> [Value] {
        try runTimed(inputs).outputs
    }

    func runTimed(_ inputs: [Value]) throws -> (outputs: [Value], timings: RunTimings) {
        let tensors = try Self.tensors(inputs)
        let result = try plan(for: tensors.map(\.shape)).run(tensors)
        return (result.outputs.map(Value.tensor), result.timings)
    }

    func profile(_ inputs: [Value]) throws -> [LayerTiming] {
        let tensors = try Self.tensors(inputs)
        return try plan(for: tensors.map(\.shape)).profile(tensors)
    }

    func describe(inputShapes: [[Int]]) throws -> EngineReport {
        try plan(for: inputShapes).report
    }

    func prepare(inputShapes: [[Int]]) throws {
        _ = try plan(for: inputShapes)
    }

    /// The cubins of every plan built so far, by `CUDASource.planName`.
    var compiledCode: [CompiledCode] {
        let sources = lock.withLock {
            plans.values.flatMap { plan in plan.nodes.flatMap { $0.lowering?.launchSources ?? [] } }
        }
        var code: [String: [UInt8]] = [:]
        for source in sources where code[source.planName] == nil {
            if let image = device.modules.image(for: source) { code[source.planName] = image }
        }
        return code.sorted { $0.key < $1.key }.map { CompiledCode(name: $0.key, bytes: $0.value) }
    }

    /// The plan for these input shapes, building it (and uploading the weights it needs) on first use.
    func plan(for shapes: [[Int]]) throws -> CUDAPlan {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[shapes] { return plan }
        let plan = try CUDAPlanBuilder(program: self, inputShapes: shapes).build()
        plans[shapes] = plan
        return plan
    }

    /// The device copy of initializer `name`; called with the lock held, from the plan builder.
    func weight(_ name: String, _ tensor: Tensor) throws -> DeviceBuffer {
        if let buffer = weights[name] { return buffer }
        let buffer = try withErrorContext("uploading weight '\(name)' (\(tensor.type))") {
            try device.upload(tensor)
        }
        weights[name] = buffer
        return buffer
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
