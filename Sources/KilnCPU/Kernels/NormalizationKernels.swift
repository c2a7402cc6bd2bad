import KilnIR
import KilnRuntime

enum NormalizationKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
