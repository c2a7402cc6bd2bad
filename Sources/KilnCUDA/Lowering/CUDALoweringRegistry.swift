import KilnIR

/// The CUDA backend's registry: one table per kernel family file. Adding a family is one line here.
enum CUDALoweringRegistry {
    static let families: [[(LayerKind, CUDALoweringFunction)]] = [
        CUDAElementwiseLowerings.all,
        CUDAReductionLowerings.all,
        CUDAShapeLowerings.all,
        CUDALinearAlgebraLowerings.all,
        CUDAQuantizationLowerings.all,
    ]

    static let all: [LayerKind: CUDALoweringFunction] = {
        var table: [LayerKind: CUDALoweringFunction] = [:]
        for family in families {
            for (kind, lowering) in family { table[kind] = lowering }
        }
        return table
    }()
}
