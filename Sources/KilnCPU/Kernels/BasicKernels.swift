import KilnIR
import KilnRuntime

/// Kernels for the layers every graph can contain.
enum BasicKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(IdentityLayer.self) { _, inputs, _ in
            guard let first = inputs.first, let value = first else {
                throw KilnError.invalidArgument("identity needs one input")
            }
            return [value]
        }
    ]
}
