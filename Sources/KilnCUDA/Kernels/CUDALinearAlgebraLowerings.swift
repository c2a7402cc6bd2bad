import KilnIR

/// Lowerings of the LinearAlgebra family.
enum CUDALinearAlgebraLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = []
}
