import KilnIR
import KilnRuntime

/// Makes the kernel for one layer; receives the layer (its typed parameters) and its environment (a compiler
/// for its subgraphs, the device's tuner). Errors here are build-time errors.
public typealias CPUKernelFactory = @Sendable (any Layer, CPUKernelEnvironment) throws -> any Kernel

/// A kernel whose work is one closure over the layer's parameters; enough for most reference kernels.
public struct ClosureKernel: Kernel {
    let body: @Sendable ([Value?], KernelContext) throws -> [Value]

    public init(_ body: @escaping @Sendable ([Value?], KernelContext) throws -> [Value]) { self.body = body }

    public func execute(_ inputs: [Value?], _ context: KernelContext) throws -> [Value] {
        try body(inputs, context)
    }
}

/// One registry entry: layer type `L` computed by `body`. The layer is cast once, at kernel creation.
public func cpuKernel<L: Layer>(
    _ type: L.Type, _ body: @escaping @Sendable (L, [Value?], KernelContext) throws -> [Value]
) -> (LayerKind, CPUKernelFactory) {
    (
        L.kind,
        { layer, _ in
            guard let typed = layer as? L else {
                throw KilnError.runtime(
                    "layer of kind \(L.kind) has unexpected parameter type \(Swift.type(of: layer))")
            }
            return ClosureKernel { inputs, context in try body(typed, inputs, context) }
        }
    )
}

/// Argument access for kernels, with errors that say which input was wrong.
extension Array where Element == Value? {
    /// Input `index` as a tensor; throws when absent or not a tensor.
    public func tensor(_ index: Int) throws -> Tensor {
        guard index < count, let value = self[index] else {
            throw KilnError.invalidArgument("required input \(index) is missing")
        }
        return try withErrorContext("input \(index)") { try value.asTensor() }
    }

    /// Input `index` as a tensor, or nil when it is absent (an omitted optional input).
    public func optionalTensor(_ index: Int) throws -> Tensor? {
        guard index < count, let value = self[index] else { return nil }
        return try withErrorContext("input \(index)") { try value.asTensor() }
    }
}
