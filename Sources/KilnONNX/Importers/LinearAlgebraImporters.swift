import KilnIR

/// MatMul, Gemm, MatMulInteger, Einsum and Det.
enum LinearAlgebraImporters {
    static let table: [OperatorImporter] = [
        .layer("MatMul") { _ in MatMulLayer() },
        // Gemm's `broadcast` attribute (opsets 1-6) only allowed C to broadcast; the layer always broadcasts C.
        .layer("Gemm") { c in
            if let a = c.inputType(0)?.tensorType?.rank, a != 2 { throw c.invalid("Gemm's A must be 2-D, is \(a)-D") }
            if let b = c.inputType(1)?.tensorType?.rank, b != 2 { throw c.invalid("Gemm's B must be 2-D, is \(b)-D") }
            return MatMulLayer(
                transposeA: try c.int("transA", default: 0) != 0, transposeB: try c.int("transB", default: 0) != 0,
                alpha: try c.float("alpha", default: 1), beta: try c.float("beta", default: 1))
        },
        .layer("MatMulInteger", since: 10) { _ in MatMulIntegerLayer() },
        .layer("Einsum", since: 12) { c in EinsumLayer(equation: try EinsumEquation(parsing: c.string("equation"))) },
        .layer("Det", since: 11) { _ in DeterminantLayer() },
    ]
}
