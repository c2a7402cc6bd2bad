import KilnIR

/// MatMul/Gemm -> one cuBLASLt `.matMul` step, plus the epilogue kernel when cuBLASLt cannot finish exactly; on
/// Hopper, large 16-bit products with such an activation run as Kiln's own kernel (`CUDAWarpGroupProduct`).
///
/// Semantics (the CPU reference, LinearAlgebraMatMul.swift): `Y = act(alpha * op(A)·op(B) + beta * C)` with numpy
/// batch broadcasting, 1-D operands promoted ([k] -> [1, k] for A, [k] -> [k, 1] for B) and C broadcast to Y.
/// C is ignored when beta is 0.
enum CUDALinearAlgebraMatMul {
    static func lower(_ layer: MatMulLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let dtype = try info.input(0).dtype
        guard [.float32, .float16, .bfloat16].contains(dtype) else {
            throw KilnError.unsupported("CUDA matMul handles float32, float16 and bfloat16, not \(dtype.onnxName)")
        }
        for index in 0..<min(info.inputCount, 4) where info.hasInput(index) && (index < 3 || layer.epilogue.residual) {
            guard try info.input(index).dtype == dtype else {
                throw KilnError.typeMismatch("matMul input \(index) is not \(dtype.onnxName) like A")
            }
        }
        let a = try info.inputShape(0)
        let b = try info.inputShape(1)
        let out = try info.outputShape(0)
        guard !a.isEmpty, !b.isEmpty else { throw KilnError.shapeMismatch("matMul operands must have rank >= 1") }
        let a2 = a.count == 1 ? [1, a[0]] : a
        let b2 = b.count == 1 ? [b[0], 1] : b
        let (ar, ac) = (a2[a2.count - 2], a2[a2.count - 1])
        let (br, bc) = (b2[b2.count - 2], b2[b2.count - 1])
        let m = layer.transposeA ? ac : ar
        let k = layer.transposeA ? ar : ac
        let n = layer.transposeB ? br : bc
        guard k == (layer.transposeB ? bc : br) else {
            throw KilnError.shapeMismatch("matMul inner dimensions differ: \(a) x \(b)")
        }
        let aBatch = Array(a2.dropLast(2))
        let bBatch = Array(b2.dropLast(2))
        let batchShape = try Broadcast.shape(aBatch, bBatch)
        let expected = batchShape + (a.count != 1 ? [m] : []) + (b.count != 1 ? [n] : [])
        guard expected == out else {
            throw KilnError.shapeMismatch("matMul of \(a) x \(b) gives \(expected), the graph says \(out)")
        }
        let batch = batchShape.reduce(1, *)
        let total = out.reduce(1, *)
        if total == 0 { return CUDALowering(steps: []) }
        guard k > 0 else { throw KilnError.unsupported("CUDA matMul with an empty inner dimension") }

        // Each operand is either one matrix for every batch entry or one per entry; cuBLASLt's strided batch
        // cannot express partial broadcasts such as [2, 1, m, k] x [1, 3, k, n].
        let aCount = aBatch.reduce(1, *)
        let bCount = bBatch.reduce(1, *)
        guard aCount == 1 || aCount == batch, bCount == 1 || bCount == batch else {
            throw KilnError.unsupported("CUDA matMul cannot broadcast batches \(aBatch) against \(bBatch)")
        }
        var step = CUDAMatMul(
            a: .input(0), b: .input(1), d: .output(0), m: m, n: n, k: k, transposeA: layer.transposeA,
            transposeB: layer.transposeB, batch: batch, strideA: aCount == 1 ? 0 : m * k,
            strideB: bCount == 1 ? 0 : k * n, strideD: m * n, alpha: layer.alpha, dtype: dtype)
        if batch > 1, bCount == 1, aCount == batch, !layer.transposeA {
            // A's batches are consecutive m×k row-major blocks: one (batch·m)×k matrix times the shared B.
            step.m = batch * m
            step.batch = 1
            step.strideA = 0
            step.strideD = 0
        } else if batch == 1 {
            (step.strideA, step.strideB, step.strideD) = (0, 0, 0)
        }

        var addend = CUDALinearAlgebraEpilogue.Addend.none
        if info.hasInput(2), layer.beta != 0 {
            let c = try info.inputShape(2)
            guard try Broadcast.shape(c, out) == out else {
                throw KilnError.shapeMismatch("matMul C \(c) does not broadcast to the output \(out)")
            }
            let cCount = c.reduce(1, *)
            let rowVector = cCount == n && (n == 1 || (b.count != 1 && c.last == n))
            if cCount == total {
                step.c = .input(2)
                step.beta = layer.beta
                step.strideC = step.strideD
            } else if rowVector && layer.beta == 1 {
                // cuBLASLt's bias epilogue adds the vector unscaled.
                step.bias = .input(2)
            } else if rowVector {
                addend = .row(.input(2), length: n, beta: layer.beta)
            } else {
                let strides = Broadcast.strides(of: c, broadcastTo: out)
                let collapsed = CUDALinearAlgebraEpilogue.collapse(sizes: out, strides: strides)
                addend = .broadcast(.input(2), sizes: collapsed.sizes, strides: collapsed.strides, beta: layer.beta)
            }
        }

        // The fused residual (input 3, the output's shape) is added after beta * C: in cuBLASLt's C slot when
        // that is free, else by the epilogue kernel.
        var addends = addend == .none ? [] : [addend]
        if layer.epilogue.residual {
            guard info.hasInput(3), try info.inputShape(3) == out else {
                throw KilnError.shapeMismatch("matMul residual must have the output's shape \(out)")
            }
            if step.c == nil {
                step.c = .input(3)
                step.beta = 1
                step.strideC = step.strideD
            } else {
                addends.append(.full(.input(3), beta: 1))
            }
        }
        let activation = layer.epilogue.activation
        // On Hopper, Kiln's own product applies the activations cuBLASLt lacks on the accumulators.
        // Its other tile shapes are timed from level 4 on: at BERT-base's and ViT-B/16's shapes the default won
        // and their sm_90a modules added 13-16 s to the build (BENCHMARKS.md, "16-bit product tile shapes").
        let products =
            addends.isEmpty
            ? Array(
                CUDAWarpGroupProduct.launches(
                    step, activation: activation, architecture: info.architecture,
                    multiprocessors: info.multiprocessors
                ).prefix(info.options.tacticCandidates >= 16 ? CUDAWarpGroupProduct.tileShapes.count : 1))
            : []
        if let launch = products.first {
            let signature =
                "warpgroup product m\(step.m) n\(step.n) k\(step.k) \(step.dtype.onnxName) tb \(step.transposeB) "
                + "\(activation.map { "\($0)" } ?? "") bias \(step.bias != nil) sm\(info.architecture)x\(info.multiprocessors)"
            return CUDALowering(
                steps: [.launch(launch)],
                alternatives: products.count > 1 ? [0: CUDALaunchChoice(signature: signature, launches: products)] : [:]
            )
        }
        // Only ReLU goes to cuBLASLt: its GELU is the tanh form and the rest have no library epilogue. Once the
        // kernel runs anyway, it applies the activation too.
        guard !addends.isEmpty || (activation != nil && activation != .relu) else {
            step.activation = activation
            return CUDALowering(.matMul(step))
        }
        var steps: [CUDAStep] = [.matMul(step)]
        // An activation alone runs in place as a generated pointwise kernel, which measured
        // 2-3x faster than the epilogue kernel for float16 erf-GELU (BENCHMARKS.md, "Where float16 time goes").
        if addends.isEmpty,
            let launch = try pointwiseEpilogue(activation: activation, bias: nil, shape: out, dtype: dtype)
        {
            return CUDALowering(steps: steps + [.launch(launch)])
        }
        for (i, next) in (addends.isEmpty ? [.none] : addends).enumerated() {
            let last = i == max(addends.count, 1) - 1
            steps.append(
                .launch(
                    try CUDALinearAlgebraEpilogue.launch(
                        output: .output(0), count: total, addend: next, activation: last ? activation : nil,
                        dtype: dtype)))
        }
        return CUDALowering(steps: steps)
    }

    /// `y = activation(y + bias)` in place over the output of `shape` as one generated pointwise kernel (the
    /// unfused layers' formulas, in float32 for 16-bit data): `bias` is an operand of `biasShape` broadcasting
    /// to `shape` (a row or per-channel vector), or nil. Nil when there is nothing to do.
    static func pointwiseEpilogue(
        activation: EpilogueActivation?, bias: (CUDAOperand, shape: [Int])?, shape: [Int], dtype: DType
    ) throws -> CUDALaunch? {
        typealias Step = FusedPointwiseLayer.Step
        var steps: [Step] = []
        if bias != nil { steps.append(Step(layer: BinaryLayer(.add), operands: [.input(0), .input(1)])) }
        func last() -> FusedPointwiseLayer.Operand { steps.isEmpty ? .input(0) : .step(steps.count - 1) }
        switch activation {
        case nil: break
        case .relu?: steps.append(Step(layer: UnaryLayer(.relu), operands: [last()]))
        case .gelu(let approximate)?:
            steps.append(Step(layer: UnaryLayer(.gelu(tanh: approximate)), operands: [last()]))
        case .sigmoid?: steps.append(Step(layer: UnaryLayer(.sigmoid), operands: [last()]))
        case .tanh?: steps.append(Step(layer: UnaryLayer(.tanh), operands: [last()]))
        case .leakyRelu(let alpha)?: steps.append(Step(layer: UnaryLayer(.leakyRelu(alpha: alpha)), operands: [last()]))
        case .clip(let low, let high)?:
            steps.append(
                Step(layer: ClipLayer(min: low.map(Double.init), max: high.map(Double.init)), operands: [last()]))
        case .silu?:
            let x = last()
            steps.append(Step(layer: UnaryLayer(.sigmoid), operands: [x]))
            steps.append(Step(layer: BinaryLayer(.mul), operands: [x, .step(steps.count - 1)]))
        }
        guard !steps.isEmpty else { return nil }
        let compute = CUDAPrelude.computeType(dtype)
        let count = bias == nil ? 1 : 2
        let (function, parameters) = try CUDAElementwiseFused.compose(
            FusedPointwiseLayer(steps: steps), inputs: Array(repeating: compute, count: count))
        let stored = function.storing(inputs: Array(repeating: dtype, count: count), output: dtype)
        let plan = try PointwiseKernel.plan(
            stored, inputShapes: [shape] + (bias.map { [$0.shape] } ?? []), output: shape)
        return try PointwiseKernel.launch(
            stored, plan: plan, inputs: [.output(0)] + (bias.map { [$0.0] } ?? []), output: .output(0),
            parameters: parameters)
    }
}
