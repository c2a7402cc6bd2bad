import Foundation
import KilnIR

/// One attribute of an ONNX node, decoded once. Graph attributes stay protos until the importer imports them
/// with the right outer scope.
public enum ONNXAttribute: Sendable {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(Tensor)
    case graph(Onnx_GraphProto)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    case tensors([Tensor])
    case graphs([Onnx_GraphProto])
    case typeProto(Onnx_TypeProto)

    init(proto a: Onnx_AttributeProto, directory: URL?) throws {
        func text(_ d: Data) -> String { String(decoding: d, as: UTF8.self) }
        switch a.type {
        case .float: self = .float(a.f)
        case .int: self = .int(a.i)
        case .string: self = .string(text(a.s))
        case .tensor: self = .tensor(try Tensor(proto: a.t, directory: directory))
        case .graph: self = .graph(a.g)
        case .floats: self = .floats(a.floats)
        case .ints: self = .ints(a.ints)
        case .strings: self = .strings(a.strings.map(text))
        case .tensors: self = .tensors(try a.tensors.map { try Tensor(proto: $0, directory: directory) })
        case .graphs: self = .graphs(a.graphs)
        case .sparseTensor: self = .tensor(try SparseTensor.densify(a.sparseTensor, directory: directory))
        case .typeProto: self = .typeProto(a.tp)
        case .undefined:
            // Old models omit the type; infer it from the one field that is set.
            if a.hasF {
                self = .float(a.f)
            } else if a.hasI {
                self = .int(a.i)
            } else if a.hasS {
                self = .string(text(a.s))
            } else if a.hasT {
                self = .tensor(try Tensor(proto: a.t, directory: directory))
            } else if a.hasG {
                self = .graph(a.g)
            } else if !a.floats.isEmpty {
                self = .floats(a.floats)
            } else if !a.ints.isEmpty {
                self = .ints(a.ints)
            } else if !a.strings.isEmpty {
                self = .strings(a.strings.map(text))
            } else {
                throw KilnError.invalidModel("attribute '\(a.name)' has no type and no value")
            }
        default:
            throw KilnError.unsupported("attribute '\(a.name)' has unsupported type \(a.type)")
        }
    }

    var typeName: String {
        switch self {
        case .float: "float"
        case .int: "int"
        case .string: "string"
        case .tensor: "tensor"
        case .graph: "graph"
        case .floats: "floats"
        case .ints: "ints"
        case .strings: "strings"
        case .tensors: "tensors"
        case .graphs: "graphs"
        case .typeProto: "type"
        }
    }
}

/// Sparse tensors (attributes and initializers) are densified at import.
enum SparseTensor {
    static func densify(_ sparse: Onnx_SparseTensorProto, directory: URL?) throws -> Tensor {
        let values = try Tensor(proto: sparse.values, directory: directory)
        let indices = try Tensor(proto: sparse.indices, directory: directory).int64Values()
        let shape = sparse.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }), Tensor.elementCount(shape) < (1 << 32) else {
            throw KilnError.invalidModel("sparse tensor has invalid dims \(sparse.dims)")
        }
        let total = Tensor.elementCount(shape)
        let nnz = values.count
        // Indices are either flat [NNZ] or coordinates [NNZ, rank].
        var flat: [Int] = []
        if indices.count == nnz {
            flat = indices.map { Int($0) }
        } else if indices.count == nnz * shape.count {
            let strides = Broadcast.strides(shape)
            flat = (0..<nnz).map { i in
                (0..<shape.count).reduce(0) { $0 + Int(indices[i * shape.count + $1]) * strides[$1] }
            }
        } else {
            throw KilnError.invalidModel("sparse tensor indices do not match its \(nnz) values")
        }
        guard flat.allSatisfy({ $0 >= 0 && $0 < total }) else {
            throw KilnError.invalidModel("sparse tensor index out of range")
        }
        let size = values.dtype.byteSize
        guard size > 0 else { throw KilnError.unsupported("sparse \(values.dtype.onnxName) tensors are not supported") }
        let dense = Tensor(zeros: values.dtype, shape: shape)
        for (i, position) in flat.enumerated() {
            (dense.storage.bytes + position * size).copyMemory(from: values.storage.bytes + i * size, byteCount: size)
        }
        return dense
    }
}
