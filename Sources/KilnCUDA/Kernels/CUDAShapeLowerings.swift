import KilnIR

/// Lowerings of the Shape family.
enum CUDAShapeLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = []
}
