import KilnIR
import KilnRuntime

enum SignalKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
