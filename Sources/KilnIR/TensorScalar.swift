/// A Swift type that holds one tensor element in host memory.
public protocol TensorScalar: Sendable {
    static var dtype: DType { get }
    static var zero: Self { get }
    /// Conversion as ONNX `Cast` defines it from a floating-point value (integers truncate toward zero).
    init(castingFrom value: Double)
    /// Conversion from an integer with two's-complement wrap-around, as numpy's `astype` does.
    init(castingFrom value: Int64)
    var doubleValue: Double { get }
    /// The value as an integer; floating-point values truncate toward zero.
    var int64Value: Int64 { get }
}

extension TensorScalar where Self: BinaryFloatingPoint {
    @inlinable public static var zero: Self { 0 }
    @inlinable public init(castingFrom value: Double) { self.init(value) }
    @inlinable public init(castingFrom value: Int64) { self.init(value) }
    @inlinable public var doubleValue: Double { Double(self) }
    @inlinable public var int64Value: Int64 {
        guard isFinite else { return isNaN ? 0 : (self < 0 ? Int64.min : Int64.max) }
        let d = Double(self)
        if d >= 9.223372036854775807e18 { return Int64.max }
        if d <= -9.223372036854775808e18 { return Int64.min }
        return Int64(d)
    }
}

extension TensorScalar where Self: FixedWidthInteger {
    @inlinable public static var zero: Self { 0 }
    @inlinable public init(castingFrom value: Double) {
        guard value.isFinite else {
            self = 0
            return
        }
        let t = value.rounded(.towardZero)
        if t >= 1.8446744073709552e19 || t <= -9.223372036854775808e18 {
            self = Self(truncatingIfNeeded: Int64.min)
        } else if t >= 9.223372036854775807e18 {
            self = Self(truncatingIfNeeded: UInt64(t))
        } else {
            self = Self(truncatingIfNeeded: Int64(t))
        }
    }
    @inlinable public init(castingFrom value: Int64) { self.init(truncatingIfNeeded: value) }
    @inlinable public var doubleValue: Double { Double(self) }
    @inlinable public var int64Value: Int64 { Int64(truncatingIfNeeded: self) }
}

extension Float: TensorScalar { public static var dtype: DType { .float32 } }
extension Double: TensorScalar { public static var dtype: DType { .float64 } }
extension Float16: TensorScalar { public static var dtype: DType { .float16 } }
extension Int8: TensorScalar { public static var dtype: DType { .int8 } }
extension Int16: TensorScalar { public static var dtype: DType { .int16 } }
extension Int32: TensorScalar { public static var dtype: DType { .int32 } }
extension Int64: TensorScalar { public static var dtype: DType { .int64 } }
extension UInt8: TensorScalar { public static var dtype: DType { .uint8 } }
extension UInt16: TensorScalar { public static var dtype: DType { .uint16 } }
extension UInt32: TensorScalar { public static var dtype: DType { .uint32 } }
extension UInt64: TensorScalar { public static var dtype: DType { .uint64 } }

extension Bool: TensorScalar {
    public static var dtype: DType { .bool }
    public static var zero: Bool { false }
    public init(castingFrom value: Double) { self = value != 0 }
    public init(castingFrom value: Int64) { self = value != 0 }
    public var doubleValue: Double { self ? 1 : 0 }
    public var int64Value: Int64 { self ? 1 : 0 }
}

/// bfloat16: the upper half of an IEEE float32. Conversions round to nearest even, as ml_dtypes does.
public struct BFloat16: TensorScalar, Hashable, Comparable {
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
        }
    }

    public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public static var dtype: DType { .bfloat16 }
    public static var zero: BFloat16 { BFloat16(bitPattern: 0) }
    public init(castingFrom value: Double) { self.init(Float(value)) }
    public init(castingFrom value: Int64) { self.init(Float(value)) }
    public var doubleValue: Double { Double(floatValue) }
    public var int64Value: Int64 { Double(floatValue).int64Value }
    public static func < (a: BFloat16, b: BFloat16) -> Bool { a.floatValue < b.floatValue }
}

/// Dispatches on a runtime dtype to a generic function over the matching Swift type. The switch is inlinable
/// so that each visitor is specialised per type in the module that defines it.
public protocol ScalarVisitor {
    associatedtype Result
    func visit<T: TensorScalar>(_ type: T.Type) throws -> Result
}

/// Like `ScalarVisitor`, restricted to the types with native arithmetic: float, double, float16 and integers.
public protocol NumericVisitor {
    associatedtype Result
    func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> Result
    func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> Result
}

extension DType {
    /// The Swift type of one element, where Kiln has one (not string, complex, float8 or sub-byte types).
    public var scalarType: (any TensorScalar.Type)? {
        switch self {
        case .float32: Float.self
        case .float64: Double.self
        case .float16: Float16.self
        case .bfloat16: BFloat16.self
        case .int8: Int8.self
        case .int16: Int16.self
        case .int32: Int32.self
        case .int64: Int64.self
        case .uint8: UInt8.self
        case .uint16: UInt16.self
        case .uint32: UInt32.self
        case .uint64: UInt64.self
        case .bool: Bool.self
        default: nil
        }
    }

    @inlinable
    public func visit<V: ScalarVisitor>(_ visitor: V) throws -> V.Result {
        switch self {
        case .float32: return try visitor.visit(Float.self)
        case .float64: return try visitor.visit(Double.self)
        case .float16: return try visitor.visit(Float16.self)
        case .bfloat16: return try visitor.visit(BFloat16.self)
        case .int8: return try visitor.visit(Int8.self)
        case .int16: return try visitor.visit(Int16.self)
        case .int32: return try visitor.visit(Int32.self)
        case .int64: return try visitor.visit(Int64.self)
        case .uint8: return try visitor.visit(UInt8.self)
        case .uint16: return try visitor.visit(UInt16.self)
        case .uint32: return try visitor.visit(UInt32.self)
        case .uint64: return try visitor.visit(UInt64.self)
        case .bool: return try visitor.visit(Bool.self)
        default: throw KilnError.unsupported("element type \(onnxName) is not supported here")
        }
    }

    @inlinable
    public func visitNumeric<V: NumericVisitor>(_ visitor: V) throws -> V.Result {
        switch self {
        case .float32: return try visitor.visitFloat(Float.self)
        case .float64: return try visitor.visitFloat(Double.self)
        case .float16: return try visitor.visitFloat(Float16.self)
        case .int8: return try visitor.visitInteger(Int8.self)
        case .int16: return try visitor.visitInteger(Int16.self)
        case .int32: return try visitor.visitInteger(Int32.self)
        case .int64: return try visitor.visitInteger(Int64.self)
        case .uint8: return try visitor.visitInteger(UInt8.self)
        case .uint16: return try visitor.visitInteger(UInt16.self)
        case .uint32: return try visitor.visitInteger(UInt32.self)
        case .uint64: return try visitor.visitInteger(UInt64.self)
        default: throw KilnError.unsupported("element type \(onnxName) has no arithmetic kernel")
        }
    }
}
