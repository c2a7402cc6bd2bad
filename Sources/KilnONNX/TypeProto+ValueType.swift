import KilnIR

extension ValueType {
    /// Converts an ONNX type; nil when the proto carries no type.
    init?(proto: Onnx_TypeProto) throws {
        switch proto.value {
        case .tensorType(let t)?:
            self = .tensor(try TensorType(elementType: t.elemType, shape: t.hasShape ? t.shape : nil))
        case .sequenceType(let s)?:
            self = .sequence(s.hasElemType ? try ValueType(proto: s.elemType) : nil)
        case .optionalType(let o)?:
            self = .optional(o.hasElemType ? try ValueType(proto: o.elemType) : nil)
        case .mapType(let m)?:
            guard let key = DType(rawValue: Int(m.keyType)) else {
                throw KilnError.unsupported("map key type \(m.keyType) is not supported")
            }
            self = .map(key: key, value: m.hasValueType ? try ValueType(proto: m.valueType) : nil)
        case .sparseTensorType?: throw KilnError.unsupported("sparse tensor values are not supported")
        case .opaqueType?: throw KilnError.unsupported("opaque values are not supported")
        case nil: return nil
        }
    }
}

extension TensorType {
    init(elementType: Int32, shape: Onnx_TensorShapeProto?) throws {
        guard let dtype = DType(rawValue: Int(elementType)) else {
            throw KilnError.unsupported("element type \(elementType) is not supported")
        }
        let dims = shape.map { s in
            s.dim.map { d -> Dim in
                switch d.value {
                case .dimValue(let v)?: v >= 0 ? .value(Int(v)) : .unknown
                case .dimParam(let p)?: p.isEmpty ? .unknown : .symbol(p)
                case nil: .unknown
                }
            }
        }
        self.init(dtype, dims)
    }
}
