import KilnIR
import KilnRuntime

/// A fused pointwise layer on the CPU: one loop over the elements (`FusedPointwiseLoop`) for float chains of
/// unary and arithmetic binary ops; otherwise each step runs with its own layer's kernel, in order, on whole
/// tensors. Both give the unfused layers' results exactly; the GPU runs the chain as one generated kernel.
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
                let loop = FusedPointwiseLoop(fused)
                return ClosureKernel { inputs, context in
                    if let loop, let output = try loop.run(inputs, threads: context.threads) {
                        return [.tensor(output)]
                    }
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
