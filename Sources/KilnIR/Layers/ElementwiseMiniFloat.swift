/// The 8- and 4-bit floating-point formats ONNX defines, held one per byte. Encoding rounds to nearest even
/// and follows the ONNX reference (numpy + ml_dtypes) bit for bit, including where NaN and overflow go.
public struct MiniFloatFormat: Sendable, Codable {
    enum Specials: Codable {
        /// e4m3fn: no infinity; NaN is the all-ones pattern (either sign).
        case finiteWithNaN
        /// e5m2: IEEE-like infinities and NaNs.
        case ieee
        /// e4m3fnuz, e5m2fnuz: no infinity, no negative zero; 0x80 is the one NaN.
        case unsignedZero
        /// float4e2m1: every pattern is a finite number.
        case none
    }

    let exponentBits: Int
    let mantissaBits: Int
    let bias: Int
    let specials: Specials
    /// The largest finite value.
    public let maxFinite: Double

    /// The format of `dtype`, or nil when `dtype` is not one of the small float formats (e8m0 is separate).
    public init?(_ dtype: DType) {
        switch dtype {
        case .float8e4m3fn: self.init(4, 3, 7, .finiteWithNaN, 448)
        case .float8e4m3fnuz: self.init(4, 3, 8, .unsignedZero, 240)
        case .float8e5m2: self.init(5, 2, 15, .ieee, 57344)
        case .float8e5m2fnuz: self.init(5, 2, 16, .unsignedZero, 57344)
        case .float4e2m1: self.init(2, 1, 1, .none, 6)
        default: return nil
        }
    }

    private init(_ e: Int, _ m: Int, _ bias: Int, _ specials: Specials, _ maxFinite: Double) {
        exponentBits = e
        mantissaBits = m
        self.bias = bias
        self.specials = specials
        self.maxFinite = maxFinite
    }

    private var signBit: UInt8 { UInt8(1) << UInt8(exponentBits + mantissaBits) }

    /// The value of one encoded element.
    public func decode(_ bits: UInt8) -> Double {
        let sign = signBit
        let negative = bits & sign != 0
        let magnitude = Int(bits & (sign &- 1))
        let exponentField = magnitude >> mantissaBits
        let mantissa = magnitude & ((1 << mantissaBits) - 1)
        // NaNs keep their sign bit, as ml_dtypes does, so a round trip through float gives the same byte.
        let nan = negative ? -Double.nan : Double.nan
        switch specials {
        case .finiteWithNaN where magnitude == Int(sign &- 1): return nan
        case .unsignedZero where bits == 0x80: return nan
        case .ieee where exponentField == (1 << exponentBits) - 1:
            return mantissa == 0 ? (negative ? -.infinity : .infinity) : nan
        default: break
        }
        let value: Double
        if exponentField == 0 {
            value = Double(mantissa) * Double(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
        } else {
            let fraction = 1 + Double(mantissa) / Double(1 << mantissaBits)
            value = fraction * Double(sign: .plus, exponent: exponentField - bias, significand: 1)
        }
        return negative ? -value : value
    }

    /// Encodes `x`. With `saturate`, values beyond the range (infinities included) clamp to the largest finite
    /// value; without, they become infinity where the format has one and NaN otherwise. float4e2m1 always
    /// saturates, having neither.
    public func encode(_ x: Double, saturate: Bool) -> UInt8 {
        let negative = x.sign == .minus
        let sign = negative ? signBit : 0
        if x.isNaN {
            switch specials {
            case .unsignedZero: return 0x80
            case .finiteWithNaN: return sign | (signBit &- 1)
            case .ieee: return sign | ((signBit &- 1) &- 1)
            // ml_dtypes maps NaN to float4's negative zero (and -NaN to +0); the ONNX reference data agrees.
            case .none: return negative ? 0 : signBit
            }
        }
        var magnitude = Swift.abs(x)
        if magnitude > maxFinite {
            if saturate || specials == .none {
                magnitude = maxFinite
            } else if magnitude.isInfinite {
                return overflow(sign)
            }
            // Finite values above the maximum may still round down to it; the check after rounding decides.
        }
        let minimumExponent = 1 - bias
        let exponent = magnitude == 0 ? minimumExponent : Swift.max(Int(magnitude.exponent), minimumExponent)
        let quantum = Double(sign: .plus, exponent: exponent - mantissaBits, significand: 1)
        let steps = (magnitude / quantum).rounded(.toNearestOrEven)
        let rounded = steps * quantum
        if rounded > maxFinite { return overflow(sign) }
        if rounded == 0 { return specials == .unsignedZero ? 0 : sign }
        let roundedExponent = Int(rounded.exponent)
        if roundedExponent < minimumExponent {
            return sign | UInt8(steps)
        }
        let scaled = rounded * Double(sign: .plus, exponent: mantissaBits - roundedExponent, significand: 1)
        let mantissa = Int(scaled) - (1 << mantissaBits)
        return sign | UInt8((roundedExponent + bias) << mantissaBits | mantissa)
    }

    private func overflow(_ sign: UInt8) -> UInt8 {
        switch specials {
        case .ieee: return sign | (UInt8((1 << exponentBits) - 1) << UInt8(mantissaBits))
        case .finiteWithNaN: return sign | (signBit &- 1)
        case .unsignedZero: return 0x80
        case .none: return sign | (signBit &- 1)
        }
    }
}

/// float8e8m0: an unsigned power of two, 2^(bits - 127); 0xFF is NaN. Conversion follows the ONNX reference
/// (`to_float8e8m0`): the float32 exponent, rounded by `rounding`, with the sign ignored.
public enum E8M0 {
    public static func decode(_ bits: UInt8) -> Double {
        bits == 0xFF ? .nan : Double(sign: .plus, exponent: Int(bits) - 127, significand: 1)
    }

    public static func encode(_ x: Float, saturate: Bool, rounding: E8M0Rounding) -> UInt8 {
        let bits = x.bitPattern
        var exponent = (bits >> 23) & 0xFF
        if exponent == 0xFF { return 0xFF }
        var roundUp = false
        switch rounding {
        case .nearest:
            let guardBit = bits & 0x40_0000 != 0
            let roundBit = bits & 0x20_0000 != 0
            let sticky = bits & 0x1F_FFFF != 0
            roundUp = guardBit && (roundBit || sticky || exponent > 0)
        case .up:
            roundUp = bits & 0x7F_FFFF != 0
        case .down:
            break
        }
        if saturate && exponent == 0xFE { roundUp = false }
        if roundUp { exponent += 1 }
        return UInt8(truncatingIfNeeded: exponent)
    }
}
