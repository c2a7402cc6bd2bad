/// The ONNX importer's registry: one table per importer family file. Adding a family is one line here.
enum OperatorRegistry {
    static let families: [[OperatorImporter]] = [
        BasicImporters.table,
        ElementwiseImporters.table,
        ReductionImporters.table,
        NormalizationImporters.table,
        LinearAlgebraImporters.table,
        ConvolutionImporters.table,
        PoolingImporters.table,
        ShapeImporters.table,
        IndexingImporters.table,
        ControlFlowImporters.table,
        SequenceImporters.table,
        QuantizationImporters.table,
        RecurrentImporters.table,
        SignalImporters.table,
        TextImporters.table,
        MiscImporters.table,
        NewestImporters.table,
    ]

    /// Importers by domain ("" for ai.onnx) and op type.
    static let byOp: [String: [String: OperatorImporter]] = {
        var table: [String: [String: OperatorImporter]] = [:]
        for family in families {
            for importer in family { table[importer.domain, default: [:]][importer.op] = importer }
        }
        return table
    }()
}
