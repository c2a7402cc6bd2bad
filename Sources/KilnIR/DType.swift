/// Element types of tensors. Raw values are ONNX's `TensorProto.DataType` numbers so that import and export
/// need no table.
public enum DType: Int, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case float64 = 11
    case uint32 = 12
    case uint64 = 13
    case complex64 = 14
    case complex128 = 15
    case bfloat16 = 16
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22
    case float4e2m1 = 23
    case float8e8m0 = 24
    case uint2 = 25
    case int2 = 26

    /// Bytes one element occupies in host memory. Sub-byte types are held unpacked, one byte each; packing
    /// happens only at the file boundary.
    public var byteSize: Int {
        switch self {
        case .bool, .uint8, .int8, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0,
            .uint4, .int4, .float4e2m1, .uint2, .int2:
            1
        case .uint16, .int16, .float16, .bfloat16: 2
        case .int32, .uint32, .float32: 4
        case .int64, .uint64, .float64, .complex64: 8
        case .complex128: 16
        case .string: 0
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2,
            .float8e5m2fnuz, .float4e2m1, .float8e8m0:
            true
        default: false
        }
    }

    public var isInteger: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64, .int4, .uint4, .int2, .uint2: true
        default: false
        }
    }

    public var isSignedInteger: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .int4, .int2: true
        default: false
        }
    }

    /// The ONNX spelling, as in `tensor(float)`.
    public var onnxName: String {
        switch self {
        case .float32: "float"
        case .float64: "double"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .int8: "int8"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .uint8: "uint8"
        case .uint16: "uint16"
        case .uint32: "uint32"
        case .uint64: "uint64"
        case .bool: "bool"
        case .string: "string"
        case .complex64: "complex64"
        case .complex128: "complex128"
        case .float8e4m3fn: "float8e4m3fn"
        case .float8e4m3fnuz: "float8e4m3fnuz"
        case .float8e5m2: "float8e5m2"
        case .float8e5m2fnuz: "float8e5m2fnuz"
        case .uint4: "uint4"
        case .int4: "int4"
        case .float4e2m1: "float4e2m1"
        case .float8e8m0: "float8e8m0"
        case .uint2: "uint2"
        case .int2: "int2"
        }
    }

    /// The short spelling used in Kiln's text form and CLI output.
    public var description: String {
        switch self {
        case .float32: "f32"
        case .float64: "f64"
        case .float16: "f16"
        case .bfloat16: "bf16"
        case .int8: "i8"
        case .int16: "i16"
        case .int32: "i32"
        case .int64: "i64"
        case .uint8: "u8"
        case .uint16: "u16"
        case .uint32: "u32"
        case .uint64: "u64"
        case .bool: "bool"
        case .string: "string"
        default: onnxName
        }
    }

    /// Parses either the short or the ONNX spelling.
    public init?(name: String) {
        guard let match = DType.allCases.first(where: { $0.description == name || $0.onnxName == name }) else {
            return nil
        }
        self = match
    }
}
