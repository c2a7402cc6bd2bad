import KilnIR
import KilnRuntime

/// Kernels for the pointwise layers: unary math and activations, clip, binary arithmetic/logic/comparison,
/// variadic sum/mean/max/min, select and cast.
enum ElementwiseKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(UnaryLayer.self) { layer, inputs, context in
            [.tensor(try ElementwiseUnary.apply(layer.op, inputs.tensor(0), threads: context.threads))]
        },
        cpuKernel(ClipLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let low = try inputs.optionalTensor(1) ?? layer.min.map { Tensor(scalar: $0) }
            let high = try inputs.optionalTensor(2) ?? layer.max.map { Tensor(scalar: $0) }
            return [.tensor(try ElementwiseUnary.clip(x, low: low, high: high, threads: context.threads))]
        },
        cpuKernel(BinaryLayer.self) { layer, inputs, context in
            [.tensor(try ElementwiseBinary.apply(layer.op, inputs.tensor(0), inputs.tensor(1), threads: context.threads))]
        },
        cpuKernel(VariadicLayer.self) { layer, inputs, context in
            [.tensor(try ElementwiseVariadic.apply(layer.op, inputs, threads: context.threads))]
        },
        cpuKernel(SelectLayer.self) { _, inputs, context in
            [.tensor(try ElementwiseSelect.apply(inputs.tensor(0), inputs.tensor(1), inputs.tensor(2), threads: context.threads))]
        },
        cpuKernel(CastLayer.self) { layer, inputs, _ in
            [.tensor(try inputs.tensor(0).cast(to: layer.to, saturate: layer.saturate, rounding: layer.rounding))]
        },
    ]
}

enum ElementwiseVariadic {
    /// Folds the inputs pairwise with broadcasting; mean divides the sum by the input count.
    static func apply(_ op: VariadicOp, _ inputs: [Value?], threads: Int) throws -> Tensor {
        guard !inputs.isEmpty else { throw KilnError.invalidArgument("\(op.rawValue) needs at least one input") }
        let binary: BinaryOp
        switch op {
        case .sum, .mean: binary = .add
        case .max: binary = .max
        case .min: binary = .min
        }
        var result = try inputs.tensor(0)
        for i in 1..<inputs.count {
            result = try ElementwiseBinary.apply(binary, result, inputs.tensor(i), threads: threads)
        }
        if op == .mean && inputs.count > 1 {
            let n = try Tensor(scalar: Double(inputs.count)).cast(to: result.dtype)
            result = try ElementwiseBinary.apply(.div, result, n, threads: threads)
        }
        return result
    }
}

enum ElementwiseSelect {
    /// out = condition ? x : y, all three broadcast together.
    static func apply(_ condition: Tensor, _ x: Tensor, _ y: Tensor, threads: Int) throws -> Tensor {
        guard condition.dtype == .bool else {
            throw KilnError.typeMismatch("select condition must be bool, is \(condition.dtype.onnxName)")
        }
        guard x.dtype == y.dtype else {
            throw KilnError.typeMismatch("select of \(x.dtype.onnxName) and \(y.dtype.onnxName)")
        }
        let plan = try BroadcastPlan([condition.shape, x.shape, y.shape])
        if x.dtype == .string {
            let (c, sx, sy) = (condition.scalars(as: Bool.self), x.strings, y.strings)
            let (ic, ix, iy) = (
                broadcastIndices(plan, input: 0), broadcastIndices(plan, input: 1), broadcastIndices(plan, input: 2)
            )
            return Tensor(shape: plan.shape, strings: (0..<plan.count).map { c[ic[$0]] ? sx[ix[$0]] : sy[iy[$0]] })
        }
        return try x.dtype.visit(SelectVisitor(plan: plan, condition: condition, x: x, y: y, threads: threads))
    }
}

private struct SelectVisitor: ScalarVisitor {
    let plan: BroadcastPlan
    let condition: Tensor
    let x: Tensor
    let y: Tensor
    let threads: Int

    func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
        let plan = plan
        return condition.withUnsafeBuffer(as: Bool.self) { cb in
            x.withUnsafeBuffer(as: T.self) { xb in
                y.withUnsafeBuffer(as: T.self) { yb in
                    Tensor.build(T.self, shape: plan.shape) { out in
                        guard let cp = cb.baseAddress, let xp = xb.baseAddress, let yp = yb.baseAddress,
                            let op = out.baseAddress, plan.count > 0
                        else { return }
                        let n = plan.inner
                        let (sc, sx, sy) = (
                            plan.innerAdvances[0] ? 1 : 0, plan.innerAdvances[1] ? 1 : 0, plan.innerAdvances[2] ? 1 : 0
                        )
                        plan.forEachRows(threads: threads) { rows in
                            for row in rows {
                                let o = op + row * n
                                let pc = cp + plan.offset(0, row: row)
                                let px = xp + plan.offset(1, row: row)
                                let py = yp + plan.offset(2, row: row)
                                for i in 0..<n { o[i] = pc[i * sc] ? px[i * sx] : py[i * sy] }
                            }
                        }
                    }
                }
            }
        }
    }
}
