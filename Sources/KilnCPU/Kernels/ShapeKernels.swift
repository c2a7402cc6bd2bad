import KilnIR
import KilnRuntime

enum ShapeKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
