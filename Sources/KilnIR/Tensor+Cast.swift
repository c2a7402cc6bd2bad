/// Element type conversion with ONNX Cast semantics: floats to integers truncate toward zero and wrap (as numpy's
/// `astype`), integers wrap to narrower widths, float8 targets round to nearest even and saturate when asked,
/// strings parse ("NaN", "INF", "-INF" included) and print the way numpy does.
extension Tensor {
    public func cast(to target: DType, saturate: Bool = true, rounding: E8M0Rounding = .up) throws -> Tensor {
        if target == dtype { return self }
        if dtype == .complex64 || dtype == .complex128 || target == .complex64 || target == .complex128 {
            throw KilnError.unsupported("cast from \(dtype.onnxName) to \(target.onnxName)")
        }
        if target == .string { return Tensor(shape: shape, strings: try formattedElements()) }
        if let converted = floatConversion(to: target) { return converted }
        if let source = dtype.scalarType, target.scalarType != nil {
            return try target.visit(NativeCast(source: self, sourceType: source))
        }
        return try CastCarrier(self).make(target, shape: shape, saturate: saturate, rounding: rounding)
    }

    /// The conversions engines make by the million (weights, and tactic buffers to and from 16-bit floats), with
    /// concrete types so that each element is a few instructions; the values are the general route's (every
    /// float32 is exact in float64, and each target rounds once from the same value).
    private func floatConversion(to target: DType) -> Tensor? {
        func map<S: TensorScalar, U: TensorScalar>(_ s: S.Type, _ u: U.Type, _ f: (S) -> U) -> Tensor {
            withUnsafeBuffer(as: S.self) { input in
                Tensor.build(U.self, shape: shape) { out in
                    for i in 0..<input.count { out[i] = f(input[i]) }
                }
            }
        }
        switch (dtype, target) {
        case (.float32, .float16): return map(Float.self, Float16.self) { Float16($0) }
        case (.float16, .float32): return map(Float16.self, Float.self) { Float($0) }
        case (.float32, .bfloat16): return map(Float.self, BFloat16.self) { BFloat16($0) }
        case (.bfloat16, .float32): return map(BFloat16.self, Float.self) { $0.floatValue }
        case (.float32, .float64): return map(Float.self, Double.self) { Double($0) }
        default: return nil
        }
    }

    /// Each element as numpy's `str` prints it.
    func formattedElements() throws -> [String] {
        switch CastCarrier.Kind(dtype) {
        case .strings: return strings
        case .bools: return try int64Values().map { $0 != 0 ? "True" : "False" }
        case .integers: return try CastCarrier(self).integers.map { String($0) }
        case .unsigned: return scalars(as: UInt64.self).map { String($0) }
        case .floats:
            if dtype == .float32 { return scalars(as: Float.self).map { NumpyFormat.string(for: $0) } }
            if dtype == .float16 { return scalars(as: Float16.self).map { NumpyFormat.string(for: $0) } }
            return try CastCarrier(self).doubles.map { NumpyFormat.string(for: $0) }
        }
    }
}

/// Native-to-native conversion, specialised for each pair of Swift types.
private struct NativeCast: ScalarVisitor {
    let source: Tensor
    let sourceType: any TensorScalar.Type

    func visit<U: TensorScalar>(_ type: U.Type) throws -> Tensor {
        try convert(sourceType, to: U.self)
    }

    private func convert<S: TensorScalar, U: TensorScalar>(_ s: S.Type, to u: U.Type) throws -> Tensor {
        source.withUnsafeBuffer(as: S.self) { input in
            Tensor.build(U.self, shape: source.shape) { out in
                if S.dtype.isFloatingPoint && U.dtype.isInteger {
                    let target = U.dtype
                    for i in 0..<input.count {
                        out[i] = U(castingFrom: NumpyTruncation.integer(input[i].doubleValue, to: target))
                    }
                } else if S.dtype.isFloatingPoint {
                    for i in 0..<input.count { out[i] = U(castingFrom: input[i].doubleValue) }
                } else if S.dtype == .uint64, U.dtype.isFloatingPoint {
                    // Through Int64 the values above Int64.max would turn negative.
                    for i in 0..<input.count {
                        out[i] = U(castingFrom: Double(UInt64(truncatingIfNeeded: input[i].int64Value)))
                    }
                } else {
                    for i in 0..<input.count { out[i] = U(castingFrom: input[i].int64Value) }
                }
            }
        }
    }
}

/// The elements of any dtype read as Double or Int64: the slow, general route for float8, 4- and 2-bit types
/// and strings.
struct CastCarrier {
    enum Kind {
        case floats, integers, unsigned, bools, strings
        init(_ dtype: DType) {
            if dtype == .string {
                self = .strings
            } else if dtype == .bool {
                self = .bools
            } else if dtype == .uint64 {
                self = .unsigned
            } else if dtype.isFloatingPoint {
                self = .floats
            } else {
                self = .integers
            }
        }
    }

    var doubles: [Double] = []
    var integers: [Int64] = []
    let isFloat: Bool

    init(_ t: Tensor) throws {
        switch t.dtype {
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1:
            guard let format = MiniFloatFormat(t.dtype) else { throw KilnError.unsupported("cast from \(t.dtype)") }
            doubles = t.scalars(as: UInt8.self).map { format.decode($0) }
            isFloat = true
        case .float8e8m0:
            doubles = t.scalars(as: UInt8.self).map { E8M0.decode($0) }
            isFloat = true
        case .int4, .int2:
            integers = t.scalars(as: UInt8.self).map { Int64(Int8(bitPattern: $0)) }
            isFloat = false
        case .uint4, .uint2:
            integers = t.scalars(as: UInt8.self).map { Int64($0) }
            isFloat = false
        case .string:
            isFloat = true
            doubles = try t.strings.map(CastCarrier.parse)
        default:
            if t.dtype.isFloatingPoint {
                doubles = try t.doubleValues()
                isFloat = true
            } else {
                integers = try t.int64Values()
                isFloat = false
            }
        }
    }

    /// Parses a number the way numpy's `astype` from strings does, accepting nan and inf in any case.
    static func parse(_ text: String) throws -> Double {
        let trimmed = text.trimmingSpaces
        if let v = Double(trimmed) { return v }
        switch trimmed.lowercased() {
        case "nan", "+nan", "-nan": return .nan
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: throw KilnError.invalidArgument("cannot convert string \"\(text)\" to a number")
        }
    }

    var count: Int { isFloat ? doubles.count : integers.count }

    func double(_ i: Int) -> Double { isFloat ? doubles[i] : Double(integers[i]) }
    func int64(_ i: Int) -> Int64 { isFloat ? NumpyTruncation.integer(doubles[i], to: .int32) : integers[i] }

    func make(_ target: DType, shape: [Int], saturate: Bool, rounding: E8M0Rounding) throws -> Tensor {
        var bytes = [UInt8](repeating: 0, count: count)
        switch target {
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1:
            guard let format = MiniFloatFormat(target) else { throw KilnError.unsupported("cast to \(target)") }
            for i in 0..<count { bytes[i] = format.encode(double(i), saturate: saturate) }
        case .float8e8m0:
            for i in 0..<count { bytes[i] = E8M0.encode(Float(double(i)), saturate: saturate, rounding: rounding) }
        case .int4, .uint4, .int2, .uint2:
            let bits: Int64 = target == .int4 || target == .uint4 ? 4 : 2
            let signed = target == .int4 || target == .int2
            for i in 0..<count {
                let v = int64(i)
                let wrapped = signed ? (v << (64 - bits)) >> (64 - bits) : v & ((1 << bits) - 1)
                bytes[i] = UInt8(truncatingIfNeeded: wrapped)
            }
        default:
            return try target.visit(CarrierToNative(carrier: self, shape: shape))
        }
        return try bytes.withUnsafeBytes { try Tensor(dtype: target, shape: shape, rawBytes: $0) }
    }
}

private struct CarrierToNative: ScalarVisitor {
    let carrier: CastCarrier
    let shape: [Int]

    func visit<U: TensorScalar>(_ type: U.Type) throws -> Tensor {
        Tensor.build(U.self, shape: shape) { out in
            if carrier.isFloat && U.dtype.isInteger {
                for i in 0..<out.count {
                    out[i] = U(castingFrom: NumpyTruncation.integer(carrier.doubles[i], to: U.dtype))
                }
            } else if carrier.isFloat {
                for i in 0..<out.count { out[i] = U(castingFrom: carrier.doubles[i]) }
            } else {
                for i in 0..<out.count { out[i] = U(castingFrom: carrier.integers[i]) }
            }
        }
    }
}

/// Float-to-integer conversion as the ONNX reference (numpy on x86-64) does it: truncate toward zero; types up
/// to 32 bits convert through int32 and 64-bit ones through int64, where out-of-range values and NaN become
/// the most negative value; the result then wraps to the target width.
enum NumpyTruncation {
    static func integer(_ value: Double, to target: DType) -> Int64 {
        let t = value.rounded(.towardZero)
        switch target {
        case .uint64:
            if t >= 0 && t < 1.8446744073709552e19 { return Int64(bitPattern: UInt64(t)) }
            return t >= -9.223372036854775808e18 && t < 0 ? Int64(t) : Int64.min
        case .int64, .uint32:
            return t >= -9.223372036854775808e18 && t < 9.223372036854775808e18 ? Int64(t) : Int64.min
        default:
            return t >= -2147483648 && t < 2147483648 ? Int64(t) : Int64(Int32.min)
        }
    }
}

/// numpy's `str` of floating-point values: the shortest round-trip digits, positional between 1e-4 and 1e16,
/// scientific (`1e-05`, `1.5e+16`) outside.
enum NumpyFormat {
    static func string<F: BinaryFloatingPoint & LosslessStringConvertible>(for value: F) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        let text = value.description
        let (negative, digits, exponent) = decompose(text)
        let magnitude = Swift.abs(Double(value))
        if magnitude >= 1e16 || magnitude < 1e-4 {
            let mantissa = digits.count > 1 ? "\(digits.prefix(1)).\(digits.dropFirst())" : digits
            let e = exponent - 1
            let sign = e < 0 ? "-" : "+"
            let pad = Swift.abs(e) < 10 ? "0" : ""
            return (negative ? "-" : "") + mantissa + "e" + sign + pad + String(Swift.abs(e))
        }
        // Positional: `exponent` counts the digits before the point.
        var result = negative ? "-" : ""
        if exponent <= 0 {
            result += "0." + String(repeating: "0", count: -exponent) + digits
        } else if exponent >= digits.count {
            result += digits + String(repeating: "0", count: exponent - digits.count) + ".0"
        } else {
            result += "\(digits.prefix(exponent)).\(digits.dropFirst(exponent))"
        }
        return result
    }

    /// Splits Swift's shortest description into sign, significant digits (no leading or trailing zeros) and
    /// the decimal exponent such that value = 0.DIGITS * 10^exponent.
    static func decompose(_ text: String) -> (Bool, String, Int) {
        var body = Substring(text)
        let negative = body.first == "-"
        if negative { body = body.dropFirst() }
        var exponent = 0
        if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(body[body.index(after: e)...]) ?? 0
            body = body[..<e]
        }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        let whole = parts.first.map(String.init) ?? ""
        let fraction = parts.count > 1 ? String(parts[1]) : ""
        var digits = whole + fraction
        exponent += whole.count
        while digits.first == "0" {
            digits.removeFirst()
            exponent -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        return (negative, digits.isEmpty ? "0" : digits, exponent)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
