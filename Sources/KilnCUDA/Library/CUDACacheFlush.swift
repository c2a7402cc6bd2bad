import KilnIR

/// Tactic timing writes over a buffer larger than any GPU's L2 cache before each timed call, so that an
/// algorithm is not flattered by operands left in the cache by its own previous run (in a model, weights come
/// from device memory and each layer's operands differ).
enum CUDACacheFlush {
    /// Bytes written: twice the largest L2 of current GPUs (H100/H200: 50-60 MiB).
    static let bytes = 128 << 20

    static func buffer(_ context: CUDAContext) throws -> DeviceBuffer {
        try context.allocate(bytes: bytes)
    }

    static func flush(_ buffer: DeviceBuffer, on stream: CUDAStream) throws {
        try stream.fill(device: buffer.address, byte: 0, bytes: buffer.bytes)
    }
}
