import KilnIR
import KilnRuntime

/// Kernels for matMul, matMul.integer, determinant and einsum.
enum LinearAlgebraKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        statefulKernel(MatMulLayer.self) { MatMulKernel($0, tuner: $1.tuner) },
        cpuKernel(MatMulIntegerLayer.self) { _, inputs, _ in [.tensor(try matMulInteger(inputs))] },
        cpuKernel(DeterminantLayer.self) { _, inputs, _ in [.tensor(try determinant(inputs.tensor(0)))] },
        cpuKernel(EinsumLayer.self) { layer, inputs, _ in
            let tensors = try (0..<inputs.count).map { try inputs.tensor($0) }
            return [.tensor(try EinsumEvaluator(equation: layer.equation).evaluate(tensors))]
        },
    ]

    /// A registry entry for a kernel object made once per node (for kernels that keep packed weights).
    static func statefulKernel<L: Layer>(
        _ type: L.Type, _ make: @escaping @Sendable (L, CPUKernelEnvironment) -> any Kernel
    ) -> (LayerKind, CPUKernelFactory) {
        (
            L.kind,
            { layer, environment in
                guard let typed = layer as? L else {
                    throw KilnError.runtime("layer of kind \(L.kind) has unexpected type \(Swift.type(of: layer))")
                }
                return make(typed, environment)
            }
        )
    }

    /// int32 product of 8-bit operands minus zero points (scalar, per row of A, per column of B).
    static func matMulInteger(_ inputs: [Value?]) throws -> Tensor {
        let a = try inputs.tensor(0)
        let b = try inputs.tensor(1)
        let g = try MatMulGeometry(a.shape, b.shape, transposeA: false, transposeB: false)
        let aZero = try LinearAlgebraSupport.integers(inputs.optionalTensor(2))
        let bZero = try LinearAlgebraSupport.integers(inputs.optionalTensor(3))
        guard aZero.count == 1 || aZero.count == g.m, bZero.count == 1 || bZero.count == g.n else {
            throw KilnError.shapeMismatch("matMulInteger zero points must be scalars or per row/column")
        }
        let av = try a.int64Values().map { Int32(truncatingIfNeeded: $0) }
        let bv = try b.int64Values().map { Int32(truncatingIfNeeded: $0) }
        return Tensor.build(Int32.self, shape: g.outShape) { out in
            for batch in 0..<g.batchCount {
                for i in 0..<g.m {
                    let za = Int32(truncatingIfNeeded: aZero.count == 1 ? aZero[0] : aZero[i])
                    for j in 0..<g.n {
                        let zb = Int32(truncatingIfNeeded: bZero.count == 1 ? bZero[0] : bZero[j])
                        var acc: Int32 = 0
                        for kk in 0..<g.k {
                            let x = av[g.aOffsets[batch] + i * g.aRowStride + kk * g.aColumnStride] &- za
                            let y = bv[g.bOffsets[batch] + kk * g.bRowStride + j * g.bColumnStride] &- zb
                            acc = acc &+ x &* y
                        }
                        out[(batch * g.m + i) * g.n + j] = acc
                    }
                }
            }
        }
    }

    /// Determinants by LU decomposition with partial pivoting, in double precision.
    static func determinant(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 2, x.shape[x.rank - 1] == x.shape[x.rank - 2] else {
            throw KilnError.shapeMismatch("det needs square matrices, got \(x.shape)")
        }
        guard x.dtype.isFloatingPoint else { throw KilnError.unsupported("det of \(x.dtype.onnxName)") }
        let n = x.shape[x.rank - 1]
        let values = try x.doubleValues()
        let outShape = Array(x.shape.dropLast(2))
        let count = Tensor.elementCount(outShape)
        var dets = [Double](repeating: 1, count: count)
        var m = [Double](repeating: 0, count: n * n)
        for b in 0..<count {
            for i in 0..<(n * n) { m[i] = values[b * n * n + i] }
            var det = 1.0
            for col in 0..<n {
                var pivot = col
                for r in (col + 1)..<max(n, col + 1) where abs(m[r * n + col]) > abs(m[pivot * n + col]) { pivot = r }
                if m[pivot * n + col] == 0 {
                    det = 0
                    break
                }
                if pivot != col {
                    for j in 0..<n { m.swapAt(pivot * n + j, col * n + j) }
                    det = -det
                }
                let p = m[col * n + col]
                det *= p
                for r in (col + 1)..<max(n, col + 1) {
                    let f = m[r * n + col] / p
                    if f == 0 { continue }
                    for j in col..<n { m[r * n + j] -= f * m[col * n + j] }
                }
            }
            dets[b] = det
        }
        return try Tensor.fromDoubles(dets, shape: outShape, dtype: x.dtype)
    }
}

extension Tensor {
    /// A tensor of floating-point `dtype` from double values (rounded to the type).
    static func fromDoubles(_ values: [Double], shape: [Int], dtype: DType) throws -> Tensor {
        switch dtype {
        case .float32: return Tensor(shape: shape, scalars: values.map { Float($0) })
        case .float64: return Tensor(shape: shape, scalars: values)
        case .float16: return Tensor(shape: shape, scalars: values.map { Float16($0) })
        case .bfloat16: return Tensor(shape: shape, scalars: values.map { BFloat16(Float($0)) })
        default: throw KilnError.unsupported("\(dtype.onnxName) result")
        }
    }
}
