import KilnIR
import KilnRuntime

/// The index arithmetic of one (batched, broadcast) matrix product `op(A) x op(B)`.
struct MatMulGeometry {
    var m = 0
    var n = 0
    var k = 0
    var batchShape: [Int] = []
    var outShape: [Int] = []
    /// Element offset of each batch's matrix in A and in B.
    var aOffsets: [Int] = []
    var bOffsets: [Int] = []
    /// Strides of op(A)(i, k) and op(B)(k, j) inside one matrix.
    var aRowStride = 0
    var aColumnStride = 0
    var bRowStride = 0
    var bColumnStride = 0
    /// B is one matrix shared by every batch.
    var sharedB = false
    /// A's batches are consecutive row-major matrices, so the batch can fold into M.
    var foldableA = false

    init(_ a: [Int], _ b: [Int], transposeA: Bool, transposeB: Bool) throws {
        guard !a.isEmpty, !b.isEmpty else { throw KilnError.shapeMismatch("matMul operands must have rank >= 1") }
        let a2 = a.count == 1 ? [1, a[0]] : a
        let b2 = b.count == 1 ? [b[0], 1] : b
        let (ar, ac) = (a2[a2.count - 2], a2[a2.count - 1])
        let (br, bc) = (b2[b2.count - 2], b2[b2.count - 1])
        m = transposeA ? ac : ar
        k = transposeA ? ar : ac
        n = transposeB ? br : bc
        let kb = transposeB ? bc : br
        guard k == kb else { throw KilnError.shapeMismatch("matMul inner dimensions differ: \(a) x \(b)") }
        aRowStride = transposeA ? 1 : ac
        aColumnStride = transposeA ? ac : 1
        bRowStride = transposeB ? 1 : bc
        bColumnStride = transposeB ? bc : 1
        let aBatch = Array(a2.dropLast(2))
        let bBatch = Array(b2.dropLast(2))
        batchShape = try Broadcast.shape(aBatch, bBatch)
        outShape = batchShape + (a.count != 1 ? [m] : []) + (b.count != 1 ? [n] : [])
        let aStrides = Broadcast.strides(of: aBatch, broadcastTo: batchShape).map { $0 * ar * ac }
        let bStrides = Broadcast.strides(of: bBatch, broadcastTo: batchShape).map { $0 * br * bc }
        aOffsets = LinearAlgebraSupport.broadcastOffsets(batchShape, aStrides)
        bOffsets = LinearAlgebraSupport.broadcastOffsets(batchShape, bStrides)
        sharedB = bOffsets.allSatisfy { $0 == 0 }
        foldableA = !transposeA && aOffsets.enumerated().allSatisfy { $0.element == $0.offset * m * k }
    }

    var batchCount: Int { aOffsets.count }
}

/// MatMul/Gemm. Float32 runs on the packed SGEMM, on the tactic the tuner chose for its shapes; when B is the
/// same tensor on every run (a constant weight) its packed panels are reused. float16/bfloat16 compute in
/// float32, a constant B widened once; double and integers use a plain loop.
final class MatMulKernel: Kernel {
    let layer: MatMulLayer
    let tuner: GemmTuner
    let packedB = PackedWeightCache()
    /// B as float32 (a float16/bfloat16 one widened), kept while B is the same tensor (a constant weight).
    let widenedB = WeightCache<Tensor>()

    init(_ layer: MatMulLayer, tuner: GemmTuner) {
        self.layer = layer
        self.tuner = tuner
    }

    func execute(_ inputs: [Value?], _ context: KernelContext) throws -> [Value] {
        let a = try inputs.tensor(0)
        let b = try inputs.tensor(1)
        let c = try inputs.optionalTensor(2)
        try LinearAlgebraSupport.requireSameType([a, b] + (c.map { [$0] } ?? []), "matMul")
        let g = try MatMulGeometry(a.shape, b.shape, transposeA: layer.transposeA, transposeB: layer.transposeB)
        let bias = layer.beta == 0 ? nil : c
        if let bias { _ = try Broadcast.shape(bias.shape, g.outShape) }
        let residual = layer.epilogue.residual ? try inputs.tensor(3) : nil
        if let residual {
            guard residual.shape == g.outShape, residual.dtype == a.dtype else {
                throw KilnError.shapeMismatch("matMul residual \(residual.shape) must be the output \(g.outShape)")
            }
        }
        let threads = context.threads
        let signature =
            "cpu.matmul \(a.dtype.onnxName) a=\(a.shape) b=\(b.shape) transposed=\(layer.transposeA),"
            + "\(layer.transposeB) threads=\(threads)"
        let work = g.batchCount * g.m * g.n * g.k
        switch a.dtype {
        case .float32, .float16, .bfloat16:
            // 16-bit floats compute in float32 (float32 comes back as it is); a constant B is widened once.
            let w = LinearAlgebraSupport.widened
            let (af, bf, cf, rf) = (w(a), widenedB.value(for: b) { w(b) }, bias.map(w), residual.map(w))
            let tactic = try tuner.tactic(signature: signature, work: work) {
                floatProduct(af, bf, cf, rf, g, threads: threads, tactic: $0)
            }
            let r = floatProduct(af, bf, cf, rf, g, threads: threads, tactic: tactic)
            return [.tensor(LinearAlgebraSupport.narrowed(r, to: a.dtype))]
        default:
            guard layer.epilogue.isEmpty else {
                throw KilnError.unsupported("matMul epilogue on \(a.dtype.onnxName)")
            }
            return [.tensor(try a.dtype.visitNumeric(ReferenceMatMul(a: a, b: b, c: bias, g: g, layer: layer)))]
        }
    }

    private func floatProduct(
        _ a: Tensor, _ b: Tensor, _ c: Tensor?, _ residual: Tensor?, _ g: MatMulGeometry, threads: Int,
        tactic: GemmTactic
    ) -> Tensor {
        let (m, n, k) = (g.m, g.n, g.k)
        let alpha = layer.alpha
        let activation = layer.epilogue.activation
        // A C that varies along the columns only (a product's bias vector) and the residual are added to each
        // tile in the epilogue; any other C is written to the output first and the product accumulated onto it.
        let columnBias: [Float]? = c.flatMap { c in
            guard c.shape.last == n, c.shape.dropLast().allSatisfy({ $0 == 1 }) else { return nil }
            return c.scalars(as: Float.self).map { layer.beta * $0 }
        }
        return Tensor.build(Float.self, shape: g.outShape) { out in
            guard let o = out.baseAddress, out.count > 0 else { return }
            var accumulate = false
            if let c, columnBias == nil {
                fillBias(o, shape: g.outShape, c)
                accumulate = true
            }
            LinearAlgebraSupport.withFloats(residual) { residual in
                (columnBias ?? []).withUnsafeBufferPointer { columnBiasBuffer in
                    /// The epilogue of the rows starting at element `offset` of the output.
                    let epilogue = { (offset: Int) in
                        GemmEpilogue(
                            columnBias: columnBias == nil ? nil : columnBiasBuffer.baseAddress,
                            residual: residual.map { $0 + offset }, residualStride: n, activation: activation)
                    }
                    a.withUnsafeBuffer(as: Float.self) { ab in
                        b.withUnsafeBuffer(as: Float.self) { bb in
                            guard let ap = ab.baseAddress, let bp = bb.baseAddress else {
                                if !accumulate { out.update(repeating: 0) }
                                epilogue(0).apply(o, ldc: n, row: 0, column: 0, rows: out.count / n, cols: n)
                                return
                            }
                            let aView = { (offset: Int) in
                                FloatMatrix(base: ap + offset, rowStride: g.aRowStride, columnStride: g.aColumnStride)
                            }
                            let bView = { (offset: Int) in
                                FloatMatrix(base: bp + offset, rowStride: g.bRowStride, columnStride: g.bColumnStride)
                            }
                            if g.sharedB {
                                let pack = {
                                    [
                                        PackedPanels.pack(
                                            SGEMM.transposedView(bView(0)), extent: n, depth: k, width: tactic.nr,
                                            blockSize: tactic.kc, threads: threads)
                                    ]
                                }
                                let pb = packedB.value(for: b, layout: [tactic.nr, tactic.kc], pack)[0]
                                let rows = g.foldableA ? g.batchCount * m : m
                                let batches = g.foldableA ? 1 : g.batchCount
                                for batch in 0..<batches {
                                    let pa = PackedPanels.pack(
                                        aView(g.aOffsets[batch]), extent: rows, depth: k, width: tactic.mr,
                                        blockSize: tactic.kc, threads: threads)
                                    SGEMM.multiply(
                                        pa, pb, into: o + batch * m * n, ldc: n, alpha: alpha, accumulate: accumulate,
                                        epilogue: epilogue(batch * m * n), tactic: tactic, threads: threads)
                                }
                                return
                            }
                            let small = m * n * k < 64 * 64 * 64 && g.batchCount > 1
                            let shared = UncheckedSendable((aView, bView, o, epilogue))
                            Parallel.forEach(g.batchCount, threads: small ? threads : 1) { range in
                                let (aView, bView, o, epilogue) = shared.value
                                for batch in range {
                                    SGEMM.gemm(
                                        m: m, n: n, k: k, a: aView(g.aOffsets[batch]), b: bView(g.bOffsets[batch]),
                                        c: o + batch * m * n, ldc: n, alpha: alpha, accumulate: accumulate,
                                        epilogue: epilogue(batch * m * n), tactic: tactic, threads: small ? 1 : threads)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// out = beta * C, broadcast to the output shape.
    private func fillBias(_ o: UnsafeMutablePointer<Float>, shape: [Int], _ c: Tensor) {
        let offsets = LinearAlgebraSupport.broadcastOffsets(shape, Broadcast.strides(of: c.shape, broadcastTo: shape))
        let beta = layer.beta
        c.withUnsafeBuffer(as: Float.self) { cb in
            for i in offsets.indices { o[i] = beta * cb[offsets[i]] }
        }
    }
}

/// The plain-loop product for double and integer types (integers wrap, as ONNX Runtime's do).
struct ReferenceMatMul: NumericVisitor {
    let a: Tensor
    let b: Tensor
    let c: Tensor?
    let g: MatMulGeometry
    let layer: MatMulLayer

    func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> Tensor {
        let alpha = Double(layer.alpha)
        let beta = Double(layer.beta)
        return run(
            T.self, multiplyAdd: { $0 + $1 * $2 },
            finish: { acc, bias in
                T(alpha * acc.doubleValue + beta * bias.doubleValue)
            })
    }

    func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> Tensor {
        let alpha = layer.alpha
        let beta = layer.beta
        return run(
            T.self, multiplyAdd: { $0 &+ $1 &* $2 },
            finish: { acc, bias in
                if alpha == 1 && beta == 1 { return acc &+ bias }
                return T(castingFrom: Double(alpha) * acc.doubleValue + Double(beta) * bias.doubleValue)
            })
    }

    private func run<T: TensorScalar>(
        _ type: T.Type, multiplyAdd: (T, T, T) -> T, finish: (T, T) -> T
    ) -> Tensor {
        let biasOffsets = c.map {
            LinearAlgebraSupport.broadcastOffsets(g.outShape, Broadcast.strides(of: $0.shape, broadcastTo: g.outShape))
        }
        let cValues = c?.scalars(as: T.self) ?? []
        return a.withUnsafeBuffer(as: T.self) { ab in
            b.withUnsafeBuffer(as: T.self) { bb in
                Tensor.build(T.self, shape: g.outShape) { out in
                    for batch in 0..<g.batchCount {
                        let ao = g.aOffsets[batch]
                        let bo = g.bOffsets[batch]
                        for i in 0..<g.m {
                            for j in 0..<g.n {
                                var acc = T.zero
                                for kk in 0..<g.k {
                                    let x = ab[ao + i * g.aRowStride + kk * g.aColumnStride]
                                    let y = bb[bo + kk * g.bRowStride + j * g.bColumnStride]
                                    acc = multiplyAdd(acc, x, y)
                                }
                                let index = (batch * g.m + i) * g.n + j
                                let bias = biasOffsets.map { cValues[$0[index]] } ?? T.zero
                                out[index] = finish(acc, bias)
                            }
                        }
                    }
                }
            }
        }
    }
}
