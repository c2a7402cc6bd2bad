import KilnIR
import KilnRuntime

enum ElementwiseKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
