import Foundation
import KilnIR

/// Arithmetic with ONNX semantics, one implementation for floats and one for integers, so that each kernel is
/// written once and specialised per element type. Integers wrap on overflow and never trap: division by zero
/// gives 0 (ONNX leaves it undefined; a crash is not an option).
protocol KernelNumber: TensorScalar, Comparable {
    static func add(_ a: Self, _ b: Self) -> Self
    static func sub(_ a: Self, _ b: Self) -> Self
    static func mul(_ a: Self, _ b: Self) -> Self
    static func div(_ a: Self, _ b: Self) -> Self
    /// fmod: the remainder takes the dividend's sign; otherwise the divisor's (Python/numpy `mod`).
    static func mod(_ a: Self, _ b: Self, fmod: Bool) -> Self
    /// NaN-propagating for floats, as numpy's maximum and minimum.
    static func maximum(_ a: Self, _ b: Self) -> Self
    static func minimum(_ a: Self, _ b: Self) -> Self
    static func negate(_ a: Self) -> Self
    static func magnitude(_ a: Self) -> Self
    static var lowest: Self { get }
    static var highest: Self { get }
    static var one: Self { get }
}

extension KernelNumber where Self: BinaryFloatingPoint {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a - b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a * b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self { a / b }
    @inline(__always) static func maximum(_ a: Self, _ b: Self) -> Self { a > b || a.isNaN ? a : b }
    @inline(__always) static func minimum(_ a: Self, _ b: Self) -> Self { a < b || a.isNaN ? a : b }
    @inline(__always) static func negate(_ a: Self) -> Self { -a }
    @inline(__always) static func magnitude(_ a: Self) -> Self { Swift.abs(a) }
    static var lowest: Self { -.infinity }
    static var highest: Self { .infinity }
    static var one: Self { 1 }

    static func mod(_ a: Self, _ b: Self, fmod: Bool) -> Self {
        let r = a.truncatingRemainder(dividingBy: b)
        if fmod || r.isNaN { return r }
        if r == 0 { return b.sign == .minus ? -0.0 : 0.0 }
        return (r < 0) != (b < 0) ? r + b : r
    }
}

extension KernelNumber where Self: FixedWidthInteger {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a &- b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self {
        b == 0 ? 0 : a.dividedReportingOverflow(by: b).partialValue
    }
    @inline(__always) static func maximum(_ a: Self, _ b: Self) -> Self { Swift.max(a, b) }
    @inline(__always) static func minimum(_ a: Self, _ b: Self) -> Self { Swift.min(a, b) }
    @inline(__always) static func negate(_ a: Self) -> Self { 0 &- a }
    @inline(__always) static func magnitude(_ a: Self) -> Self { a < 0 ? 0 &- a : a }
    static var lowest: Self { .min }
    static var highest: Self { .max }
    static var one: Self { 1 }

    static func mod(_ a: Self, _ b: Self, fmod: Bool) -> Self {
        guard b != 0 else { return 0 }
        let r = a.remainderReportingOverflow(dividingBy: b).partialValue
        if fmod || r == 0 { return r }
        return (r < 0) != (b < 0) ? r &+ b : r
    }
}

extension Float: KernelNumber {}
extension Double: KernelNumber {}
extension Int8: KernelNumber {}
extension Int16: KernelNumber {}
extension Int32: KernelNumber {}
extension Int64: KernelNumber {}
extension UInt8: KernelNumber {}
extension UInt16: KernelNumber {}
extension UInt32: KernelNumber {}
extension UInt64: KernelNumber {}

/// The math library for the two types kernels compute floating point in (float16 and bfloat16 widen to Float).
protocol KernelReal: KernelNumber, BinaryFloatingPoint {
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func log1p(_ x: Self) -> Self
    static func sin(_ x: Self) -> Self
    static func cos(_ x: Self) -> Self
    static func tan(_ x: Self) -> Self
    static func asin(_ x: Self) -> Self
    static func acos(_ x: Self) -> Self
    static func atan(_ x: Self) -> Self
    static func sinh(_ x: Self) -> Self
    static func cosh(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func asinh(_ x: Self) -> Self
    static func acosh(_ x: Self) -> Self
    static func atanh(_ x: Self) -> Self
    static func erf(_ x: Self) -> Self
    static func pow(_ x: Self, _ y: Self) -> Self
    init(_ value: Float)
}

extension Float: KernelReal {
    @inline(__always) static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    @inline(__always) static func log(_ x: Float) -> Float { Foundation.log(x) }
    @inline(__always) static func log1p(_ x: Float) -> Float { Foundation.log1p(x) }
    @inline(__always) static func sin(_ x: Float) -> Float { Foundation.sin(x) }
    @inline(__always) static func cos(_ x: Float) -> Float { Foundation.cos(x) }
    @inline(__always) static func tan(_ x: Float) -> Float { Foundation.tan(x) }
    @inline(__always) static func asin(_ x: Float) -> Float { Foundation.asin(x) }
    @inline(__always) static func acos(_ x: Float) -> Float { Foundation.acos(x) }
    @inline(__always) static func atan(_ x: Float) -> Float { Foundation.atan(x) }
    @inline(__always) static func sinh(_ x: Float) -> Float { Foundation.sinh(x) }
    @inline(__always) static func cosh(_ x: Float) -> Float { Foundation.cosh(x) }
    @inline(__always) static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
    @inline(__always) static func asinh(_ x: Float) -> Float { Foundation.asinh(x) }
    @inline(__always) static func acosh(_ x: Float) -> Float { Foundation.acosh(x) }
    @inline(__always) static func atanh(_ x: Float) -> Float { Foundation.atanh(x) }
    @inline(__always) static func erf(_ x: Float) -> Float { Foundation.erf(x) }
    @inline(__always) static func pow(_ x: Float, _ y: Float) -> Float { Foundation.pow(x, y) }
}

extension Double: KernelReal {
    @inline(__always) static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
    @inline(__always) static func sin(_ x: Double) -> Double { Foundation.sin(x) }
    @inline(__always) static func cos(_ x: Double) -> Double { Foundation.cos(x) }
    @inline(__always) static func tan(_ x: Double) -> Double { Foundation.tan(x) }
    @inline(__always) static func asin(_ x: Double) -> Double { Foundation.asin(x) }
    @inline(__always) static func acos(_ x: Double) -> Double { Foundation.acos(x) }
    @inline(__always) static func atan(_ x: Double) -> Double { Foundation.atan(x) }
    @inline(__always) static func sinh(_ x: Double) -> Double { Foundation.sinh(x) }
    @inline(__always) static func cosh(_ x: Double) -> Double { Foundation.cosh(x) }
    @inline(__always) static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) static func asinh(_ x: Double) -> Double { Foundation.asinh(x) }
    @inline(__always) static func acosh(_ x: Double) -> Double { Foundation.acosh(x) }
    @inline(__always) static func atanh(_ x: Double) -> Double { Foundation.atanh(x) }
    @inline(__always) static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    @inline(__always) static func pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
}

/// Dispatch helpers over the kernel number types.
protocol KernelNumberVisitor {
    associatedtype Result
    func visitReal<T: KernelReal>(_ type: T.Type) throws -> Result
    func visitInteger<T: KernelNumber & FixedWidthInteger>(_ type: T.Type) throws -> Result
}

extension DType {
    /// float16 and bfloat16 are computed in float32.
    var computeType: DType { self == .float16 || self == .bfloat16 ? .float32 : self }

    func visitKernelNumber<V: KernelNumberVisitor>(_ v: V) throws -> V.Result {
        switch self {
        case .float32: return try v.visitReal(Float.self)
        case .float64: return try v.visitReal(Double.self)
        case .int8: return try v.visitInteger(Int8.self)
        case .int16: return try v.visitInteger(Int16.self)
        case .int32: return try v.visitInteger(Int32.self)
        case .int64: return try v.visitInteger(Int64.self)
        case .uint8: return try v.visitInteger(UInt8.self)
        case .uint16: return try v.visitInteger(UInt16.self)
        case .uint32: return try v.visitInteger(UInt32.self)
        case .uint64: return try v.visitInteger(UInt64.self)
        default: throw KilnError.unsupported("element type \(onnxName) has no arithmetic kernel")
        }
    }
}
