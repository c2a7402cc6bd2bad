/// A host tensor: element type, concrete shape and row-major data. A value type over immutable shared storage.
public struct Tensor: Sendable, CustomStringConvertible {
    public let dtype: DType
    public let shape: [Int]
    public let storage: TensorStorage

    public var count: Int { Tensor.elementCount(shape) }
    public var rank: Int { shape.count }
    public var byteCount: Int { count * dtype.byteSize }
    public var type: TensorType { TensorType(dtype, dims: shape) }

    public static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// A zero-filled tensor (empty strings for string tensors).
    public init(zeros dtype: DType, shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
        let n = Tensor.elementCount(shape)
        storage =
            dtype == .string
            ? TensorStorage(strings: Array(repeating: "", count: n))
            : TensorStorage(byteCount: n * dtype.byteSize)
    }

    /// A tensor sharing `storage`; `storage` must hold at least `shape`'s elements.
    public init(dtype: DType, shape: [Int], storage: TensorStorage) {
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    public init<T: TensorScalar>(shape: [Int], scalars: [T]) {
        precondition(scalars.count == Tensor.elementCount(shape), "scalar count does not match shape")
        self.init(zeros: T.dtype, shape: shape)
        scalars.withUnsafeBytes { source in
            if source.count > 0 { storage.bytes.copyMemory(from: source.baseAddress!, byteCount: source.count) }
        }
    }

    public init<T: TensorScalar>(scalar: T) { self.init(shape: [], scalars: [scalar]) }

    public init(shape: [Int], strings: [String]) {
        precondition(strings.count == Tensor.elementCount(shape), "string count does not match shape")
        dtype = .string
        self.shape = shape
        storage = TensorStorage(strings: strings)
    }

    /// A tensor of `dtype` whose bytes are copied from `raw` (already in host layout, one byte per sub-byte
    /// element). Throws when the byte count does not match the shape.
    public init(dtype: DType, shape: [Int], rawBytes raw: UnsafeRawBufferPointer) throws {
        let expected = Tensor.elementCount(shape) * dtype.byteSize
        guard raw.count == expected else {
            throw KilnError.invalidModel(
                "tensor data has \(raw.count) bytes, \(expected) expected for \(dtype)\(shape)")
        }
        self.init(zeros: dtype, shape: shape)
        if expected > 0 { storage.bytes.copyMemory(from: raw.baseAddress!, byteCount: expected) }
    }

    /// Creates a tensor and lets `fill` write every element. The kernel-side way to make outputs.
    @inlinable
    public static func build<T: TensorScalar>(
        _ type: T.Type, shape: [Int], _ fill: (UnsafeMutableBufferPointer<T>) throws -> Void
    ) rethrows -> Tensor {
        let tensor = Tensor(zeros: T.dtype, shape: shape)
        let typed = tensor.storage.bytes.bindMemory(to: T.self, capacity: max(tensor.count, 1))
        try fill(UnsafeMutableBufferPointer(start: typed, count: tensor.count))
        return tensor
    }

    /// Read access to the elements as `T`, which must match `dtype`.
    @inlinable
    public func withUnsafeBuffer<T: TensorScalar, R>(
        as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R
    ) rethrows -> R {
        precondition(T.dtype == dtype || (dtype.byteSize == MemoryLayout<T>.stride && T.self == UInt8.self))
        let typed = storage.bytes.bindMemory(to: T.self, capacity: max(count, 1))
        return try body(UnsafeBufferPointer(start: typed, count: count))
    }

    public func withUnsafeRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.bytes, count: byteCount))
    }

    public func scalars<T: TensorScalar>(as type: T.Type) -> [T] {
        withUnsafeBuffer(as: T.self) { Array($0) }
    }

    public var strings: [String] { Array(storage.strings.prefix(count)) }

    /// The same data under another shape with the same element count; no copy.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard Tensor.elementCount(newShape) == count else {
            throw KilnError.shapeMismatch("cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        return Tensor(dtype: dtype, shape: newShape, storage: storage)
    }

    public var description: String { "tensor<\(type)>" }
}
