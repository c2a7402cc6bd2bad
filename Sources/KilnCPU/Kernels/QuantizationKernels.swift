import KilnIR
import KilnRuntime

enum QuantizationKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
