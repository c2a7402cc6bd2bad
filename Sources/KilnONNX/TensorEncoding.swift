import Foundation
import KilnIR

/// Writes Kiln tensors and values as ONNX protos (test data, exported models, attribute round trips).
public enum TensorEncoding {
    public static func proto(_ tensor: Tensor, name: String = "") -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dims = tensor.shape.map { Int64($0) }
        p.dataType = Int32(tensor.dtype.rawValue)
        if tensor.dtype == .string {
            p.stringData = tensor.strings.map { Data($0.utf8) }
        } else if let perByte = tensor.dtype.elementsPerPackedByte {
            let bits = 8 / perByte
            let mask = UInt8((1 << bits) - 1)
            var packed = [UInt8](repeating: 0, count: (tensor.count + perByte - 1) / perByte)
            tensor.withUnsafeRawBytes { raw in
                for i in 0..<tensor.count { packed[i / perByte] |= (raw[i] & mask) << UInt8((i % perByte) * bits) }
            }
            p.rawData = Data(packed)
        } else {
            p.rawData = tensor.withUnsafeRawBytes { Data($0) }
        }
        return p
    }

    public static func serialize(_ tensor: Tensor, name: String = "") throws -> Data {
        try proto(tensor, name: name).serializedData()
    }
}

/// Reads the test-data files of ONNX backend cases: a TensorProto, SequenceProto or OptionalProto, chosen by
/// the declared type of the graph input or output it belongs to.
public enum ValueFile {
    public static func read(_ data: Data, type: ValueType?) throws -> Value {
        switch type {
        case .sequence?:
            return try value(Onnx_SequenceProto(serializedBytes: data))
        case .optional?:
            return try value(Onnx_OptionalProto(serializedBytes: data))
        case .map?:
            throw KilnError.unsupported("map values are not supported")
        default:
            return .tensor(try Tensor(proto: Onnx_TensorProto(serializedBytes: data), directory: nil))
        }
    }

    static func value(_ s: Onnx_SequenceProto) throws -> Value {
        switch s.elemType {
        case 1:
            return .sequence(try s.tensorValues.map { .tensor(try Tensor(proto: $0, directory: nil)) }, element: nil)
        case 3: return .sequence(try s.sequenceValues.map(value), element: nil)
        case 5: return .sequence(try s.optionalValues.map(value), element: nil)
        case 0: return .sequence([], element: nil)
        default: throw KilnError.unsupported("sequences of element kind \(s.elemType) are not supported")
        }
    }

    static func value(_ o: Onnx_OptionalProto) throws -> Value {
        switch o.elemType {
        case 1 where o.hasTensorValue:
            return .optional(.tensor(try Tensor(proto: o.tensorValue, directory: nil)), element: nil)
        case 3 where o.hasSequenceValue: return .optional(try value(o.sequenceValue), element: nil)
        case 5 where o.hasOptionalValue: return .optional(try value(o.optionalValue), element: nil)
        default: return .optional(nil, element: nil)
        }
    }
}
