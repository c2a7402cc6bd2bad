import KilnIR
import KilnRuntime

enum LinearAlgebraKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
