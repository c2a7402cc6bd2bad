import KilnIR
import KilnRuntime

enum RecurrentKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
