import Foundation
import KilnIR

/// A non-blocking stream of its context. Work is asynchronous: errors of earlier work may surface at any later
/// call on the stream, and `synchronize` is where kernel faults are reported.
public final class CUDAStream: @unchecked Sendable {
    let context: CUDAContext
    let stream: OpaquePointer
    private var driver: CUDADriver { context.driver }

    init(context: CUDAContext, stream: OpaquePointer) {
        self.context = context
        self.stream = stream
    }

    deinit {
        try? context.makeCurrent()
        _ = driver.cuStreamDestroy(stream)
    }

    /// The raw `CUstream`, for cuBLASLt and cuDNN.
    public var handle: OpaquePointer? { stream }

    /// Host to device (`cuMemcpyHtoDAsync`); truly asynchronous only from pinned memory, so keep `from` alive
    /// and unchanged until the stream has passed this point.
    public func copy(toDevice: UInt64, from: UnsafeRawPointer, bytes: Int) throws {
        guard try checkedSize(bytes) else { return }
        try context.makeCurrent()
        try driver.check(driver.cuMemcpyHtoDAsync(toDevice, from, bytes, stream), "cuMemcpyHtoDAsync_v2")
    }

    /// Device to host (`cuMemcpyDtoHAsync`); the bytes are there after `synchronize`.
    public func copy(toHost: UnsafeMutableRawPointer, from: UInt64, bytes: Int) throws {
        guard try checkedSize(bytes) else { return }
        try context.makeCurrent()
        try driver.check(driver.cuMemcpyDtoHAsync(toHost, from, bytes, stream), "cuMemcpyDtoHAsync_v2")
    }

    /// Device to device (`cuMemcpyDtoDAsync`).
    public func copy(device: UInt64, from: UInt64, bytes: Int) throws {
        guard try checkedSize(bytes) else { return }
        try context.makeCurrent()
        try driver.check(driver.cuMemcpyDtoDAsync(device, from, bytes, stream), "cuMemcpyDtoDAsync_v2")
    }

    /// Sets `bytes` bytes at `device` to `byte` (`cuMemsetD8Async`).
    public func fill(device: UInt64, byte: UInt8, bytes: Int) throws {
        guard try checkedSize(bytes) else { return }
        try context.makeCurrent()
        try driver.check(driver.cuMemsetD8Async(device, byte, bytes, stream), "cuMemsetD8Async")
    }

    /// Records `event` at this point of the stream.
    public func record(_ event: CUDAEvent) throws {
        try context.makeCurrent()
        try driver.check(driver.cuEventRecord(event.event, stream), "cuEventRecord")
    }

    /// Makes later work on this stream wait until `event` has completed (`cuStreamWaitEvent`).
    public func wait(for event: CUDAEvent) throws {
        try context.makeCurrent()
        try driver.check(driver.cuStreamWaitEvent(stream, event.event, 0), "cuStreamWaitEvent")
    }

    /// Waits until all work on this stream is done.
    public func synchronize() throws {
        try context.makeCurrent()
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Starts recording this stream's work into a graph instead of running it (thread-local capture mode:
    /// only unsafe calls on this thread, such as `cuMemAlloc`, invalidate the capture).
    public func beginCapture() throws {
        try context.makeCurrent()
        try driver.check(
            driver.cuStreamBeginCapture(stream, CUDAConstant.captureModeThreadLocal), "cuStreamBeginCapture_v2")
    }

    /// Ends the capture begun by `beginCapture` and instantiates the recorded graph.
    public func endCapture() throws -> CUDAGraphExec {
        try context.makeCurrent()
        var graph: OpaquePointer?
        try driver.check(driver.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture")
        guard let graph else { throw KilnError.runtime("cuStreamEndCapture returned no graph") }
        // The executable graph is independent of the graph it came from, so the graph goes right away.
        defer { _ = driver.cuGraphDestroy(graph) }
        var exec: OpaquePointer?
        try driver.check(driver.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags")
        guard let exec else { throw KilnError.runtime("cuGraphInstantiateWithFlags returned no graph") }
        return CUDAGraphExec(context: context, exec: exec)
    }

    /// false for 0 bytes (nothing to do); throws for a negative size.
    private func checkedSize(_ bytes: Int) throws -> Bool {
        guard bytes >= 0 else { throw KilnError.invalidArgument("negative copy size \(bytes)") }
        return bytes > 0
    }
}

/// An instantiated CUDA graph, replayed with one call.
public final class CUDAGraphExec: @unchecked Sendable {
    let context: CUDAContext
    let exec: OpaquePointer

    init(context: CUDAContext, exec: OpaquePointer) {
        self.context = context
        self.exec = exec
    }

    deinit {
        try? context.makeCurrent()
        _ = context.driver.cuGraphExecDestroy(exec)
    }

    /// Enqueues the whole graph on `stream` (`cuGraphLaunch`).
    public func launch(on stream: CUDAStream) throws {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuGraphLaunch(exec, stream.stream), "cuGraphLaunch")
    }
}

/// A point in a stream, for timing and cross-stream ordering.
public final class CUDAEvent: @unchecked Sendable {
    let context: CUDAContext
    let event: OpaquePointer

    init(context: CUDAContext, event: OpaquePointer) {
        self.context = context
        self.event = event
    }

    deinit {
        try? context.makeCurrent()
        _ = context.driver.cuEventDestroy(event)
    }

    /// Waits until the work before the event's last record is done.
    public func synchronize() throws {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuEventSynchronize(event), "cuEventSynchronize")
    }

    /// Milliseconds between `start` and this event, both recorded and completed (about 0.5 µs resolution).
    public func milliseconds(since start: CUDAEvent) throws -> Double {
        try context.makeCurrent()
        var elapsed: Float = 0
        try context.driver.check(context.driver.cuEventElapsedTime(&elapsed, start.event, event), "cuEventElapsedTime")
        return Double(elapsed)
    }
}
