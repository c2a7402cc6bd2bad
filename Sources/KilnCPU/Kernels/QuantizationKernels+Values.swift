import KilnIR

/// Reading any numeric tensor as Float and writing Float results in any real dtype.
enum QuantValues {
    /// Every element as Float (float8, 4- and 2-bit types through the shared ONNX Cast conversion).
    static func floats(_ tensor: Tensor) throws -> [Float] {
        if tensor.dtype == .float32 { return tensor.scalars(as: Float.self) }
        return try tensor.cast(to: .float32).scalars(as: Float.self)
    }

    /// A tensor of real dtype `dtype` holding `values`, rounded to nearest even (float8 saturating as asked).
    static func tensor(_ dtype: DType, shape: [Int], _ values: [Float], saturate: Bool = true) throws -> Tensor {
        let floats = Tensor(shape: shape, scalars: values)
        return dtype == .float32 ? floats : try floats.cast(to: dtype, saturate: saturate)
    }

    /// The low-precision floating-point types QuantizeLinear can produce.
    static func isMiniFloat(_ dtype: DType) -> Bool {
        switch dtype {
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1: true
        default: false
        }
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
