import KilnIR

/// Sequence and optional operators.
enum SequenceImporters {
    static let table: [OperatorImporter] = [
        .layer("SequenceConstruct", since: 11) { _ in SequenceLayer(op: .construct) },
        .layer("SequenceEmpty", since: 11) { c in
            let raw = try c.int("dtype", default: DType.float32.rawValue)
            guard let dtype = DType(rawValue: raw) else { throw c.invalid("unknown dtype \(raw)") }
            return SequenceLayer(op: .empty(dtype))
        },
        .layer("SequenceAt", since: 11) { _ in SequenceLayer(op: .at) },
        .layer("SequenceInsert", since: 11) { _ in SequenceLayer(op: .insert) },
        .layer("SequenceErase", since: 11) { _ in SequenceLayer(op: .erase) },
        .layer("SequenceLength", since: 11) { _ in SequenceLayer(op: .length) },
        .layer("SplitToSequence", since: 11) { c in
            SplitToSequenceLayer(axis: try c.int("axis", default: 0), keepDims: try c.int("keepdims", default: 1) != 0)
        },
        .layer("ConcatFromSequence", since: 11) { c in
            ConcatFromSequenceLayer(axis: try c.int("axis"), newAxis: try c.int("new_axis", default: 0) != 0)
        },
        .layer("SequenceMap", since: 17) { c in
            SequenceMapLayer(body: try c.graph("body", inputTypes: c.inputElementDTypes()))
        },
        .layer("Optional", since: 15) { c in
            var type: ValueType? = nil
            if case .typeProto(let proto)? = c.attribute("type") { type = try ValueType(proto: proto) }
            return OptionalLayer(op: .wrap(type))
        },
        .layer("OptionalHasElement", since: 15) { _ in OptionalLayer(op: .hasElement) },
        .layer("OptionalGetElement", since: 15) { _ in OptionalLayer(op: .getElement) },
    ]
}
