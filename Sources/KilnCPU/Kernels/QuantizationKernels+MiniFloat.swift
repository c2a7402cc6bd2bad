import KilnIR

/// Conversions between Float and the 8- and 4-bit floating-point formats (held one byte per element).
/// Private to the quantization kernels until a shared cast helper exists in KilnIR.
struct MiniFloatFormat: Sendable {
    enum Special { case ieee, finiteNaNAllOnes, unsignedZeroNaN, none }
    let exponentBits: Int
    let mantissaBits: Int
    let bias: Int
    let special: Special
    /// Decoded value of every code (NaN where the code is NaN).
    let table: [Float]
    /// The largest finite positive code; positive codes 0...maxCode are increasing.
    let maxCode: Int

    init(exponentBits: Int, mantissaBits: Int, bias: Int, special: Special) {
        self.exponentBits = exponentBits
        self.mantissaBits = mantissaBits
        self.bias = bias
        self.special = special
        let bits = 1 + exponentBits + mantissaBits
        var table = [Float](repeating: 0, count: 1 << bits)
        let expMask = (1 << exponentBits) - 1
        let manMask = (1 << mantissaBits) - 1
        for code in 0..<(1 << bits) {
            let negative = (code >> (bits - 1)) & 1 == 1
            let e = (code >> mantissaBits) & expMask
            let m = code & manMask
            var v: Float
            if e == 0 {
                v = Float(m) * Float(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
            } else {
                v = (1 + Float(m) / Float(1 << mantissaBits)) * Float(sign: .plus, exponent: e - bias, significand: 1)
            }
            switch special {
            case .ieee where e == expMask: v = m == 0 ? .infinity : .nan
            case .finiteNaNAllOnes where e == expMask && m == manMask: v = .nan
            case .unsignedZeroNaN where negative && e == 0 && m == 0: v = .nan
            default: break
            }
            table[code] = negative && !v.isNaN ? -v : v
        }
        self.table = table
        var maxCode = (1 << (bits - 1)) - 1
        while maxCode > 0 && !table[maxCode].isFinite { maxCode -= 1 }
        self.maxCode = maxCode
    }

    var signBit: Int { 1 << (exponentBits + mantissaBits) }

    var nanCode: UInt8 {
        switch special {
        case .ieee: UInt8(truncatingIfNeeded: (((1 << exponentBits) - 1) << mantissaBits) | 1)
        case .finiteNaNAllOnes: UInt8(truncatingIfNeeded: signBit - 1)
        case .unsignedZeroNaN: UInt8(truncatingIfNeeded: signBit)
        case .none: UInt8(truncatingIfNeeded: maxCode)
        }
    }

    func decode(_ code: UInt8) -> Float { table[Int(code) & ((signBit << 1) - 1)] }

    /// Round to nearest even; out-of-range values saturate to the largest finite value, or (without
    /// `saturate`) become inf where the format has one and NaN otherwise.
    func encode(_ x: Float, saturate: Bool) -> UInt8 {
        if x.isNaN { return nanCode }
        let negative = x.sign == .minus
        let a = abs(x)
        let maxValue = table[maxCode]
        var code: Int
        if a.isInfinite || a > maxValue {
            let halfUlp = (maxValue - table[maxCode - 1]) / 2
            if saturate || special == .none || (a.isFinite && a < maxValue + halfUlp) {
                code = maxCode
                if a.isInfinite && special == .unsignedZeroNaN && saturate { code = maxCode }
            } else if special == .ieee {
                code = maxCode + 1
            } else {
                return nanCode
            }
        } else {
            var lo = 0
            var hi = maxCode
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if table[mid] <= a { lo = mid } else { hi = mid - 1 }
            }
            code = lo
            if code < maxCode {
                let below = a - table[code]
                let above = table[code + 1] - a
                if above < below || (above == below && code & 1 == 1) { code += 1 }
            }
        }
        if negative && !(special == .unsignedZeroNaN && code == 0) { code |= signBit }
        return UInt8(truncatingIfNeeded: code)
    }

    static let e4m3fn = MiniFloatFormat(exponentBits: 4, mantissaBits: 3, bias: 7, special: .finiteNaNAllOnes)
    static let e4m3fnuz = MiniFloatFormat(exponentBits: 4, mantissaBits: 3, bias: 8, special: .unsignedZeroNaN)
    static let e5m2 = MiniFloatFormat(exponentBits: 5, mantissaBits: 2, bias: 15, special: .ieee)
    static let e5m2fnuz = MiniFloatFormat(exponentBits: 5, mantissaBits: 2, bias: 16, special: .unsignedZeroNaN)
    static let e2m1 = MiniFloatFormat(exponentBits: 2, mantissaBits: 1, bias: 1, special: .none)

    static func format(_ dtype: DType) -> MiniFloatFormat? {
        switch dtype {
        case .float8e4m3fn: e4m3fn
        case .float8e4m3fnuz: e4m3fnuz
        case .float8e5m2: e5m2
        case .float8e5m2fnuz: e5m2fnuz
        case .float4e2m1: e2m1
        default: nil
        }
    }
}

/// Reading any numeric tensor as Float and writing Float results in any real dtype.
enum QuantValues {
    private struct Reader: ScalarVisitor {
        let tensor: Tensor
        func visit<T: TensorScalar>(_ type: T.Type) -> [Float] {
            tensor.withUnsafeBuffer(as: T.self) { buffer in buffer.map { Float($0.doubleValue) } }
        }
    }

    private struct Writer: ScalarVisitor {
        let values: [Float]
        let shape: [Int]
        func visit<T: TensorScalar>(_ type: T.Type) -> Tensor {
            Tensor.build(T.self, shape: shape) { out in
                for i in 0..<out.count { out[i] = T(castingFrom: Double(values[i])) }
            }
        }
    }

    /// The raw bytes of a one-byte-per-element tensor.
    static func bytes(_ tensor: Tensor) -> [UInt8] {
        tensor.withUnsafeRawBytes { Array($0) }
    }

    static func floats(_ tensor: Tensor) throws -> [Float] {
        if let format = MiniFloatFormat.format(tensor.dtype) { return bytes(tensor).map(format.decode) }
        switch tensor.dtype {
        case .int4, .int2: return bytes(tensor).map { Float(Int8(bitPattern: $0)) }
        case .uint4, .uint2: return bytes(tensor).map { Float($0) }
        default: return try tensor.dtype.visit(Reader(tensor: tensor))
        }
    }

    /// A tensor of real dtype `dtype` holding `values` (rounded to the type).
    static func tensor(_ dtype: DType, shape: [Int], _ values: [Float], saturate: Bool = true) throws -> Tensor {
        if let format = MiniFloatFormat.format(dtype) {
            return retagged(dtype, shape, values.map { format.encode($0, saturate: saturate) })
        }
        return try dtype.visit(Writer(values: values, shape: shape))
    }

    /// One-byte elements under another dtype of the same width.
    static func retagged(_ dtype: DType, _ shape: [Int], _ bytes: [UInt8]) -> Tensor {
        let t = Tensor(shape: shape, scalars: bytes)
        return Tensor(dtype: dtype, shape: shape, storage: t.storage)
    }

    /// Rounds `x` to what the arithmetic of `dtype` would hold (float16 and bfloat16 results are narrower).
    @inline(__always)
    static func narrowed(_ x: Float, _ dtype: DType) -> Float {
        switch dtype {
        case .float16: Float(Float16(x))
        case .bfloat16: BFloat16(x).floatValue
        default: x
        }
    }

    /// The inclusive range of an integer quantized type.
    static func integerRange(_ dtype: DType) -> (Int, Int)? {
        switch dtype {
        case .uint8: (0, 255)
        case .int8: (-128, 127)
        case .uint16: (0, 65535)
        case .int16: (-32768, 32767)
        case .uint4: (0, 15)
        case .int4: (-8, 7)
        case .uint2: (0, 3)
        case .int2: (-2, 1)
        case .int32: (Int(Int32.min), Int(Int32.max))
        default: nil
        }
    }

    /// An integer tensor of `dtype` (one of `integerRange`'s types) from already clamped values.
    static func integerTensor(_ dtype: DType, shape: [Int], _ values: [Int]) -> Tensor {
        switch dtype.byteSize {
        case 1: return retagged(dtype, shape, values.map { UInt8(truncatingIfNeeded: $0) })
        case 2:
            let t = Tensor(shape: shape, scalars: values.map { UInt16(truncatingIfNeeded: $0) })
            return Tensor(dtype: dtype, shape: shape, storage: t.storage)
        default: return Tensor(shape: shape, scalars: values.map { Int32(truncatingIfNeeded: $0) })
        }
    }
}
