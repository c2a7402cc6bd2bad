import KilnIR
import KilnRuntime

enum MiscKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
