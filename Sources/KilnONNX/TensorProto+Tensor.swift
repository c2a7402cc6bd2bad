import Foundation
import KilnIR

extension Tensor {
    /// Decodes an ONNX TensorProto. `directory` is the model's folder, where external data files live.
    public init(proto: Onnx_TensorProto, directory: URL?) throws {
        let name = proto.name.isEmpty ? "(unnamed)" : proto.name
        self = try withErrorContext("tensor '\(name)'") { try Tensor.decode(proto, directory: directory) }
    }

    private static func decode(_ proto: Onnx_TensorProto, directory: URL?) throws -> Tensor {
        guard let dtype = DType(rawValue: Int(proto.dataType)) else {
            throw KilnError.unsupported("element type \(proto.dataType) is not supported")
        }
        guard proto.dims.allSatisfy({ $0 >= 0 && $0 < (1 << 40) }) else {
            throw KilnError.invalidModel("invalid dimensions \(proto.dims)")
        }
        let shape = proto.dims.map { Int($0) }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        guard !overflow, count < (1 << 36) else {
            throw KilnError.invalidModel("tensor of shape \(shape) is too large")
        }
        if proto.hasSegment { throw KilnError.unsupported("segmented tensors are not supported") }

        if dtype == .string {
            guard proto.stringData.count == count else {
                throw KilnError.invalidModel("has \(proto.stringData.count) strings, shape \(shape) needs \(count)")
            }
            return Tensor(shape: shape, strings: proto.stringData.map { String(decoding: $0, as: UTF8.self) })
        }
        if proto.dataLocation == .external {
            let bytes = try ExternalData.read(proto.externalData, directory: directory)
            return try fromRaw(bytes, dtype: dtype, shape: shape, count: count)
        }
        if proto.hasRawData {
            return try fromRaw(proto.rawData, dtype: dtype, shape: shape, count: count)
        }
        return try fromTypedFields(proto, dtype: dtype, shape: shape, count: count)
    }

    /// Raw little-endian bytes; sub-byte types arrive packed and are unpacked to one byte per element.
    private static func fromRaw(_ data: Data, dtype: DType, shape: [Int], count: Int) throws -> Tensor {
        if let perByte = dtype.elementsPerPackedByte {
            let needed = (count + perByte - 1) / perByte
            guard data.count == needed else {
                throw KilnError.invalidModel(
                    "raw data has \(data.count) bytes, \(needed) expected for \(dtype.onnxName)\(shape)")
            }
            return unpack(Array(data), dtype: dtype, shape: shape, count: count)
        }
        return try data.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
    }

    private static func unpack(_ packed: [UInt8], dtype: DType, shape: [Int], count: Int) -> Tensor {
        let perByte = dtype.elementsPerPackedByte ?? 1
        let bits = 8 / perByte
        let mask = UInt8((1 << bits) - 1)
        let signed = dtype == .int4 || dtype == .int2
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            var v = (packed[i / perByte] >> UInt8((i % perByte) * bits)) & mask
            if signed && v & (1 << UInt8(bits - 1)) != 0 { v |= ~mask }
            bytes[i] = v
        }
        // Unpacked sub-byte tensors hold one element per byte; construction from matching bytes cannot fail.
        return bytes.withUnsafeBytes { raw in
            (try? Tensor(dtype: dtype, shape: shape, rawBytes: raw)) ?? Tensor(zeros: dtype, shape: shape)
        }
    }

    private static func fromTypedFields(_ p: Onnx_TensorProto, dtype: DType, shape: [Int], count: Int) throws -> Tensor
    {
        func check(_ n: Int, _ field: String, expected: Int = count) throws {
            guard n == expected else {
                throw KilnError.invalidModel("\(field) has \(n) values, shape \(shape) needs \(expected)")
            }
        }
        switch dtype {
        case .float32:
            try check(p.floatData.count, "float_data")
            return Tensor(shape: shape, scalars: p.floatData)
        case .complex64:
            try check(p.floatData.count, "float_data", expected: 2 * count)
            return try p.floatData.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
        case .float64:
            try check(p.doubleData.count, "double_data")
            return Tensor(shape: shape, scalars: p.doubleData)
        case .complex128:
            try check(p.doubleData.count, "double_data", expected: 2 * count)
            return try p.doubleData.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
        case .int64:
            try check(p.int64Data.count, "int64_data")
            return Tensor(shape: shape, scalars: p.int64Data)
        case .uint32:
            try check(p.uint64Data.count, "uint64_data")
            return Tensor(shape: shape, scalars: p.uint64Data.map { UInt32(truncatingIfNeeded: $0) })
        case .uint64:
            try check(p.uint64Data.count, "uint64_data")
            return Tensor(shape: shape, scalars: p.uint64Data)
        case .int32:
            try check(p.int32Data.count, "int32_data")
            return Tensor(shape: shape, scalars: p.int32Data)
        case .int16: return try narrow(p.int32Data, Int16.self, shape, check)
        case .uint16: return try narrow(p.int32Data, UInt16.self, shape, check)
        case .int8: return try narrow(p.int32Data, Int8.self, shape, check)
        case .uint8: return try narrow(p.int32Data, UInt8.self, shape, check)
        case .bool:
            try check(p.int32Data.count, "int32_data")
            return Tensor(shape: shape, scalars: p.int32Data.map { $0 != 0 })
        case .float16:
            try check(p.int32Data.count, "int32_data")
            return Tensor(
                shape: shape, scalars: p.int32Data.map { Float16(bitPattern: UInt16(truncatingIfNeeded: $0)) })
        case .bfloat16:
            try check(p.int32Data.count, "int32_data")
            return Tensor(
                shape: shape, scalars: p.int32Data.map { BFloat16(bitPattern: UInt16(truncatingIfNeeded: $0)) })
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0:
            try check(p.int32Data.count, "int32_data")
            let bytes = p.int32Data.map { UInt8(truncatingIfNeeded: $0) }
            return try bytes.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
        case .int4, .uint4, .float4e2m1, .int2, .uint2:
            let perByte = dtype.elementsPerPackedByte ?? 1
            try check(p.int32Data.count, "int32_data", expected: (count + perByte - 1) / perByte)
            return unpack(p.int32Data.map { UInt8(truncatingIfNeeded: $0) }, dtype: dtype, shape: shape, count: count)
        case .string:
            throw KilnError.invalidModel("string tensors use string_data")
        }
    }

    private static func narrow<T: TensorScalar & FixedWidthInteger>(
        _ values: [Int32], _ type: T.Type, _ shape: [Int], _ check: (Int, String, Int) throws -> Void
    ) throws -> Tensor {
        try check(values.count, "int32_data", Tensor.elementCount(shape))
        return Tensor(shape: shape, scalars: values.map { T(truncatingIfNeeded: $0) })
    }
}

extension DType {
    /// How many elements share one byte in ONNX's packed encoding; nil for byte-sized and larger types.
    public var elementsPerPackedByte: Int? {
        switch self {
        case .int4, .uint4, .float4e2m1: 2
        case .int2, .uint2: 4
        default: nil
        }
    }
}
