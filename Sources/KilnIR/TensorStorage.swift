/// The immutable bytes behind one or more `Tensor` values. Filled once when created, never written after, so
/// sharing it between tensors (reshape, identity) and threads is safe.
public final class TensorStorage: @unchecked Sendable {
    public let bytes: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Elements of string tensors; empty for every other dtype.
    public let strings: [String]

    /// Allocates `byteCount` zeroed bytes, 64-byte aligned so any scalar type and SIMD load is legal.
    init(byteCount: Int) {
        self.byteCount = byteCount
        bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        strings = []
    }

    init(strings: [String]) {
        byteCount = 0
        bytes = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
        self.strings = strings
    }

    deinit { bytes.deallocate() }
}
