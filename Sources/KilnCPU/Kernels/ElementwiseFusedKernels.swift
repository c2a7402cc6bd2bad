import KilnIR
import KilnRuntime

/// A fused pointwise layer on the CPU: each step runs with its own layer's kernel, in order, on whole tensors.
/// That is exact (the unfused layers' results) but not yet one loop over the elements; the GPU runs the
/// chain as one generated kernel.
enum FusedPointwiseKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        (
            FusedPointwiseLayer.kind,
            { layer, subgraphs in
                guard let fused = layer as? FusedPointwiseLayer, !fused.steps.isEmpty else {
                    throw KilnError.runtime("fused pointwise kernel for a layer of type \(type(of: layer))")
                }
                let registry = CPUKernelRegistry.all
                let kernels = try fused.steps.map { step -> any Kernel in
                    guard let factory = registry[step.layer.kind] else {
                        throw KilnError.unsupported("the CPU backend has no kernel for fused step '\(step.layer.kind)'")
                    }
                    return try factory(step.layer, subgraphs)
                }
                return ClosureKernel { inputs, context in
                    var results: [Value] = []
                    for (step, kernel) in zip(fused.steps, kernels) {
                        let operands: [Value?] = step.operands.map { operand in
                            switch operand {
                            case .input(let i): i < inputs.count ? inputs[i] : nil
                            case .step(let s): results[s]
                            }
                        }
                        guard let value = try kernel.execute(operands, context).first else {
                            throw KilnError.runtime("fused step \(results.count) produced no value")
                        }
                        results.append(value)
                    }
                    return [results[results.count - 1]]
                }
            }
        )
    ]
}
