import KilnIR
import KilnRuntime

enum ControlFlowKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
