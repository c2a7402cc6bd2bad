import KilnIR
import KilnRuntime

enum TextKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
