/// The immutable bytes behind one or more `Tensor` values. Filled once when created, never written after, so
/// sharing it between tensors (reshape, identity) and threads is safe.
public final class TensorStorage: @unchecked Sendable {
    public let bytes: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Elements of string tensors; empty for every other dtype.
    public let strings: [String]
    /// Gives back memory obtained elsewhere; nil when this storage allocated its bytes itself.
    private let release: (@Sendable (UnsafeMutableRawPointer) -> Void)?

    /// Allocates `byteCount` zeroed bytes, 64-byte aligned so any scalar type and SIMD load is legal.
    init(byteCount: Int) {
        self.byteCount = byteCount
        bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        strings = []
        release = nil
    }

    /// Storage over `byteCount` bytes at `bytes` that someone else allocated (for example page-locked memory a GPU
    /// copies to and from directly); `release` gives them back when the storage goes. The bytes are as found:
    /// whoever makes the storage fills them before any tensor reads them.
    public init(
        bytes: UnsafeMutableRawPointer, byteCount: Int, release: @escaping @Sendable (UnsafeMutableRawPointer) -> Void
    ) {
        self.bytes = bytes
        self.byteCount = byteCount
        strings = []
        self.release = release
    }

    init(strings: [String]) {
        byteCount = 0
        bytes = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
        self.strings = strings
        release = nil
    }

    /// Whether the bytes belong to someone else (a mapped plan file, a page-locked pool) rather than to this
    /// storage.
    public var isBorrowed: Bool { release != nil }

    deinit {
        if let release { release(bytes) } else { bytes.deallocate() }
    }
}
