import Foundation
import KilnIR

/// Float math the reduction, normalization and pooling kernels need on their accumulator types.
protocol ReductionMath: BinaryFloatingPoint {
    static func rExp(_ x: Self) -> Self
    static func rLog(_ x: Self) -> Self
    static func rPow(_ x: Self, _ y: Self) -> Self
}

extension Float: ReductionMath {
    @inline(__always) static func rExp(_ x: Float) -> Float { Foundation.exp(x) }
    @inline(__always) static func rLog(_ x: Float) -> Float { Foundation.log(x) }
    @inline(__always) static func rPow(_ x: Float, _ y: Float) -> Float { Foundation.pow(x, y) }
}

extension Double: ReductionMath {
    @inline(__always) static func rExp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) static func rLog(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) static func rPow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
}

/// A floating-point element type and the type its arithmetic runs in (Float for the 16-bit types).
protocol ReductionFloat: TensorScalar {
    associatedtype Acc: ReductionMath
    init(acc: Acc)
    var acc: Acc { get }
}

extension Float: ReductionFloat {
    @inline(__always) init(acc: Float) { self = acc }
    @inline(__always) var acc: Float { self }
}

extension Double: ReductionFloat {
    @inline(__always) init(acc: Double) { self = acc }
    @inline(__always) var acc: Double { self }
}

extension Float16: ReductionFloat {
    @inline(__always) init(acc: Float) { self.init(acc) }
    @inline(__always) var acc: Float { Float(self) }
}

extension BFloat16: ReductionFloat {
    @inline(__always) init(acc: Float) { self.init(acc) }
    @inline(__always) var acc: Float { floatValue }
}

/// Generic dispatch over the floating-point element types (float, double, float16, bfloat16).
protocol ReductionFloatVisitor {
    associatedtype Result
    func visit<T: ReductionFloat>(_ type: T.Type) throws -> Result
}

extension DType {
    @inline(__always)
    func visitReductionFloat<V: ReductionFloatVisitor>(_ visitor: V, op: String) throws -> V.Result {
        switch self {
        case .float32: return try visitor.visit(Float.self)
        case .float64: return try visitor.visit(Double.self)
        case .float16: return try visitor.visit(Float16.self)
        case .bfloat16: return try visitor.visit(BFloat16.self)
        default: throw KilnError.unsupported("\(op) does not support element type \(onnxName)")
        }
    }
}

/// Splits `shape` around `axis` into (outer, axis length, inner) element counts.
@inline(__always)
func reductionSplit(_ shape: [Int], axis: Int) -> (outer: Int, count: Int, inner: Int) {
    let outer = shape[..<axis].reduce(1, *)
    let inner = shape[(axis + 1)...].reduce(1, *)
    return (outer, shape[axis], inner)
}

/// Element offsets of every position of `dims` (row-major over `dims`, with their own strides).
func reductionOffsets(sizes: [Int], strides: [Int]) -> [Int] {
    var offsets = [0]
    for (size, stride) in zip(sizes, strides) {
        var next: [Int] = []
        next.reserveCapacity(offsets.count * size)
        for base in offsets {
            for i in 0..<size { next.append(base + i * stride) }
        }
        offsets = next
    }
    return offsets
}

extension Array where Element == Value? {
    /// A small integer input (axes, k, axis) as Ints, or nil when the input is absent.
    func reductionInts(_ index: Int) throws -> [Int]? {
        guard let tensor = try optionalTensor(index) else { return nil }
        return try tensor.intValues()
    }
}
