import KilnIR
import KilnRuntime

enum PoolingKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
