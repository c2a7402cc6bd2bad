import KilnIR

/// Lowerings of the Reduction family.
enum CUDAReductionLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = []
}
