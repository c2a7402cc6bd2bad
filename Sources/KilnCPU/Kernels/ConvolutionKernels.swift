import KilnIR
import KilnRuntime

enum ConvolutionKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = []
}
