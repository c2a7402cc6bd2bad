import Foundation
import KilnIR
import KilnRuntime

/// One execution context's copy of a `CUDAShapeProgram`: every step bound to the context's own arena and
/// workspace, run on its own stream. Runs of one plan are serialized; plans of different contexts run
/// concurrently. Uploads inputs, enqueues the steps (or replays them as a CUDA graph), downloads outputs.
final class CUDAPlan: @unchecked Sendable {
    enum Work {
        case launch(PreparedLaunch)
        case library(any CUDALibraryCall)
        case copy(to: UInt64, from: UInt64, bytes: Int)
        /// A layer the GPU cannot run: its inputs come to the host, the CPU kernel runs, its outputs go back.
        case host(any Kernel)
    }

    struct Step {
        var node: Int
        var work: Work
    }

    let shape: CUDAShapeProgram
    let steps: [Step]
    let memory: CUDAMemoryLayout
    let workspace: CUDAWorkspace
    private let stream: CUDAStream
    private let events: [CUDAEvent]
    private let lock = NSLock()
    private var graphExec: CUDAGraphExec?
    private var runs = 0

    init(shape: CUDAShapeProgram, steps: [Step], memory: CUDAMemoryLayout, workspace: CUDAWorkspace) throws {
        self.shape = shape
        self.steps = steps
        self.memory = memory
        self.workspace = workspace
        stream = try shape.device.context.makeStream()
        events = try (0..<4).map { _ in try shape.device.context.makeEvent() }
    }

    var graph: Graph { shape.graph }
    var nodes: [CUDAPlanBuilder.LoweredNode] { shape.nodes }
    var device: CUDADevice { shape.device }

    func run(_ inputs: [Tensor]) throws -> (outputs: [Tensor], timings: RunTimings) {
        lock.lock()
        defer { lock.unlock() }
        try device.context.makeCurrent()
        try stream.record(events[0])
        try upload(inputs)
        try stream.record(events[1])
        if let graphExec {
            try graphExec.launch(on: stream)
        } else {
            try enqueueSteps(timing: nil)
        }
        try stream.record(events[2])
        let outputs = try download()
        try stream.record(events[3])
        try stream.synchronize()
        runs += 1
        if runs == 1, device.options.useCUDAGraphs, !shape.hasHostSteps {
            // A graph only removes launch overhead: if capture fails, keep running the steps one by one.
            do { try capture() } catch {
                FileHandle.standardError.write(
                    Data("note: CUDA graph capture failed, running without: \(error)\n".utf8))
            }
        }
        let timings = RunTimings(
            upload: try events[1].milliseconds(since: events[0]),
            compute: try events[2].milliseconds(since: events[1]),
            download: try events[3].milliseconds(since: events[2]))
        return (outputs, timings)
    }

    /// One run with an event after every layer; returns each layer's time.
    func profile(_ inputs: [Tensor]) throws -> [LayerTiming] {
        lock.lock()
        defer { lock.unlock() }
        try device.context.makeCurrent()
        try upload(inputs)
        let marks = try (0...nodes.count).map { _ in try device.context.makeEvent() }
        try stream.record(marks[0])
        try enqueueSteps(timing: marks)
        try stream.synchronize()
        return try nodes.indices.map { index in
            LayerTiming(
                name: nodes[index].node.name, kind: nodes[index].node.kind,
                milliseconds: try marks[index + 1].milliseconds(since: marks[index]))
        }
    }

    private func upload(_ inputs: [Tensor]) throws {
        for (info, tensor) in zip(graph.inputs, inputs) where tensor.byteCount > 0 {
            guard tensor.dtype != .string else { throw KilnError.unsupported("string inputs cannot go to the GPU") }
            try stream.copy(
                toDevice: try memory.address(ofValue: info.name), from: tensor.storage.bytes, bytes: tensor.byteCount)
        }
    }

    private func download() throws -> [Tensor] {
        try graph.outputs.map { output in
            if let constant = graph.initializers[output.name] { return constant }
            guard let type = graph.type(of: output.name)?.tensorType, let shape = type.concreteShape else {
                throw KilnError.runtime("output '\(output.name)' has no static shape")
            }
            // Page-locked, so the copy runs at the bus's speed; the block returns to the pool with the tensor.
            let bytes = Tensor.elementCount(shape) * type.dtype.byteSize
            let tensor = Tensor(dtype: type.dtype, shape: shape, storage: try device.pinned.storage(byteCount: bytes))
            if bytes > 0 {
                try stream.copy(
                    toHost: tensor.storage.bytes, from: try memory.address(ofValue: output.name), bytes: bytes)
            }
            return tensor
        }
    }

    /// Enqueues every step; with `timing`, records `timing[i + 1]` after layer i.
    private func enqueueSteps(timing: [CUDAEvent]?) throws {
        var next = 0
        for index in nodes.indices {
            try withErrorContext("layer \(index) '\(nodes[index].node.name)' (\(nodes[index].node.kind))") {
                while next < steps.count, steps[next].node == index {
                    try enqueue(steps[next].work, node: index)
                    next += 1
                }
            }
            if let timing { try stream.record(timing[index + 1]) }
        }
    }

    private func enqueue(_ work: Work, node: Int) throws {
        switch work {
        case .launch(let launch): try launch.enqueue(on: stream)
        case .library(let call): try call.enqueue(on: stream)
        case .copy(let to, let from, let bytes): try stream.copy(device: to, from: from, bytes: bytes)
        case .host(let kernel): try runOnHost(kernel, node: node)
        }
    }

    private func runOnHost(_ kernel: any Kernel, node index: Int) throws {
        let node = nodes[index].node
        try stream.synchronize()
        let inputs = try node.inputs.map { name -> Value? in
            guard !name.isEmpty else { return nil }
            if let constant = graph.initializers[name] { return .tensor(constant) }
            guard let type = graph.type(of: name)?.tensorType, let shape = type.concreteShape else {
                throw KilnError.runtime("value '\(name)' has no static shape")
            }
            let tensor = Tensor(zeros: type.dtype, shape: shape)
            if tensor.byteCount > 0 {
                try stream.copy(
                    toHost: tensor.storage.bytes, from: try memory.address(ofValue: name), bytes: tensor.byteCount)
            }
            return .tensor(tensor)
        }
        try stream.synchronize()
        let outputs = try kernel.execute(
            inputs, KernelContext(scope: ValueScope(), threads: device.host.properties.threads))
        for (name, value) in zip(node.outputs, outputs) where !name.isEmpty {
            guard case .tensor(let tensor) = value else {
                throw KilnError.unsupported("the CPU fallback of '\(node.name)' produced a \(value.kindName)")
            }
            if tensor.byteCount > 0 {
                try stream.copy(
                    toDevice: try memory.address(ofValue: name), from: tensor.storage.bytes, bytes: tensor.byteCount)
            }
            try stream.synchronize()
        }
    }

    private func capture() throws {
        try stream.beginCapture()
        do {
            try enqueueSteps(timing: nil)
        } catch {
            _ = try? stream.endCapture()
            throw error
        }
        graphExec = try stream.endCapture()
    }
}

/// One workspace for every library call of a plan: they run one at a time on the plan's stream.
final class CUDAWorkspace: @unchecked Sendable {
    private(set) var bytes = 0
    private var buffer: DeviceBuffer?

    func reserve(_ bytes: Int) { self.bytes = max(self.bytes, bytes) }

    func allocate(on context: CUDAContext) throws {
        guard bytes > 0 else { return }
        buffer = try context.allocate(bytes: bytes)
    }

    /// The workspace's address once allocated (0 when no call needs one).
    var address: UInt64 { buffer?.address ?? 0 }
}

/// A bound cuBLASLt or cuDNN call.
protocol CUDALibraryCall: Sendable {
    func enqueue(on stream: CUDAStream) throws
}
