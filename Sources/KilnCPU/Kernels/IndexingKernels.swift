import KilnIR
import KilnRuntime

enum IndexingKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
