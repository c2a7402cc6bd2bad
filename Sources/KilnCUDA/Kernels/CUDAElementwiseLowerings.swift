import KilnIR

/// Lowerings of the Elementwise family.
enum CUDAElementwiseLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = []
}
