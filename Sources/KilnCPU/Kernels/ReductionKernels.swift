import KilnIR
import KilnRuntime

enum ReductionKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
