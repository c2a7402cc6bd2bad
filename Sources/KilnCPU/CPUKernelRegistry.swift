import KilnIR

/// The CPU backend's registry: one table per kernel family file. Adding a family is one line here.
enum CPUKernelRegistry {
    static let families: [[(LayerKind, CPUKernelFactory)]] = [
        BasicKernels.table,
        ElementwiseKernels.table,
        FusedPointwiseKernels.table,
        ReductionKernels.table,
        NormalizationKernels.table,
        LinearAlgebraKernels.table,
        ConvolutionKernels.table,
        PoolingKernels.table,
        ShapeKernels.table,
        IndexingKernels.table,
        ControlFlowKernels.table,
        SequenceKernels.table,
        QuantizationKernels.table,
        QuantizedProductKernels.table,
        RecurrentKernels.table,
        SignalKernels.table,
        TextKernels.table,
        MiscKernels.table,
        NewestKernels.table,
    ]

    static var all: [LayerKind: CPUKernelFactory] {
        var table: [LayerKind: CPUKernelFactory] = [:]
        for family in families {
            for (kind, factory) in family { table[kind] = factory }
        }
        return table
    }
}
