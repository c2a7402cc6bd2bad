import KilnIR
import KilnRuntime

enum SequenceKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
