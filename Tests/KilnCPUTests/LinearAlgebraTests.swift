import KilnIR
import KilnTestSupport
import Testing

/// numpy-style batched matmul on doubles, the reference: pads ranks, broadcasts batch axes, promotes 1-D.
private func naiveMatMul(_ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int]) -> ([Double], [Int]) {
    let a2 = aShape.count == 1 ? [1] + aShape : aShape
    let b2 = bShape.count == 1 ? bShape + [1] : bShape
    let (m, k, n) = (a2[a2.count - 2], a2[a2.count - 1], b2[b2.count - 1])
    let rank = max(a2.count, b2.count) - 2
    let ab = [Int](repeating: 1, count: rank - (a2.count - 2)) + a2.dropLast(2)
    let bb = [Int](repeating: 1, count: rank - (b2.count - 2)) + b2.dropLast(2)
    let batch = zip(ab, bb).map { max($0, $1) }
    let count = batch.reduce(1, *)
    var out = [Double](repeating: 0, count: count * m * n)
    for t in 0..<count {
        var rest = t
        var ai = 0
        var bi = 0
        var aStride = 1
        var bStride = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let i = rest % batch[axis]
            rest /= batch[axis]
            ai += (ab[axis] == 1 ? 0 : i) * aStride
            bi += (bb[axis] == 1 ? 0 : i) * bStride
            aStride *= ab[axis]
            bStride *= bb[axis]
        }
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for kk in 0..<k { s += a[(ai * m + i) * k + kk] * b[(bi * k + kk) * n + j] }
                out[(t * m + i) * n + j] = s
            }
        }
    }
    return (out, batch + (aShape.count == 1 ? [] : [m]) + (bShape.count == 1 ? [] : [n]))
}

@Suite struct LinearAlgebraTests {
    @Test(arguments: [
        ([3, 4], [4, 5]), ([2, 1, 3, 4], [5, 4, 2]), ([4], [4, 3]), ([2, 3, 4], [4]), ([4], [4]),
        ([3, 1, 6, 70], [70, 9]), ([2, 33, 20], [2, 20, 17]),
    ])
    func batchedBroadcastingMatMul(_ shapes: ([Int], [Int])) throws {
        var rng = SeededGenerator(seed: UInt64(shapes.0.reduce(1, *) * 31 + shapes.1.reduce(1, *)))
        let a = Tensor.random(shapes.0, using: &rng)
        let b = Tensor.random(shapes.1, using: &rng)
        let (expected, shape) = naiveMatMul(try a.doubleValues(), shapes.0, try b.doubleValues(), shapes.1)
        let y = try LayerRunner.run(MatMulLayer(), a, b)
        #expect(y.shape == shape)
        let worst = zip(try y.doubleValues(), expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4)
        let inferred = try MatMulLayer().inferTypes([
            LayerInput(type: .tensor(a.type)), LayerInput(type: .tensor(b.type)),
        ])
        #expect(inferred[0] == .tensor(TensorType(.float32, dims: shape)))
        // double and int32 take the reference loop.
        let a64 = Tensor(shape: shapes.0, scalars: try a.doubleValues())
        let b64 = Tensor(shape: shapes.1, scalars: try b.doubleValues())
        let y64 = try LayerRunner.run(MatMulLayer(), a64, b64)
        #expect((zip(try y64.doubleValues(), expected).map { abs($0 - $1) }.max() ?? 0) < 1e-12)
    }

    @Test func integerMatMulWraps() throws {
        var rng = SeededGenerator(seed: 5)
        let a = Tensor.randomIntegers(Int32.self, [3, 4], in: -50...50, using: &rng)
        let b = Tensor.randomIntegers(Int32.self, [4, 2], in: -50...50, using: &rng)
        let (expected, _) = naiveMatMul(try a.doubleValues(), [3, 4], try b.doubleValues(), [4, 2])
        let y = try LayerRunner.run(MatMulLayer(), a, b)
        #expect(y.dtype == .int32)
        #expect(try y.doubleValues() == expected)
    }

    @Test func matMulIntegerWithZeroPoints() throws {
        let a = Tensor(shape: [2, 3], scalars: [UInt8](arrayLiteral: 11, 7, 3, 10, 6, 2))
        let b = Tensor(shape: [3, 2], scalars: [UInt8](arrayLiteral: 1, 4, 2, 5, 3, 6))
        let y = try LayerRunner.run(
            MatMulIntegerLayer(),
            inputs: [.tensor(a), .tensor(b), .tensor(Tensor(scalar: UInt8(2))), .tensor(Tensor(scalar: UInt8(1)))]
        )[0].asTensor()
        // (a - 2) x (b - 1) = [[9,5,1],[8,4,0]] x [[0,3],[1,4],[2,5]]
        #expect(y.scalars(as: Int32.self) == [7, 52, 4, 40])
    }

    @Test(arguments: [
        ("ij,jk->ik", [[3, 4], [4, 5]]), ("ii->i", [[4, 4]]), ("...ij->...ji", [[2, 3, 4]]),
        ("bij,bjk->bik", [[2, 3, 4], [2, 4, 5]]),
        ("ij,jk", [[3, 4], [4, 2]]), ("i,i", [[5], [5]]), ("ij->", [[3, 4]]), ("bii->bi", [[2, 3, 3]]),
    ])
    func einsum(_ equation: String, _ shapes: [[Int]]) throws {
        var rng = SeededGenerator(seed: UInt64(equation.count))
        let tensors = shapes.map { Tensor.random($0, using: &rng) }
        let v = try tensors.map { try $0.doubleValues() }
        let y = try LayerRunner.run(
            EinsumLayer(equation: try EinsumEquation(parsing: equation)), inputs: tensors.map { .tensor($0) })[0]
            .asTensor()
        let expected: [Double]
        switch equation {
        case "ij,jk->ik", "ij,jk", "bij,bjk->bik":
            expected = naiveMatMul(v[0], shapes[0], v[1], shapes[1]).0
        case "ii->i": expected = (0..<4).map { v[0][$0 * 5] }
        case "...ij->...ji":
            expected = (0..<24).map { o in
                let (b, j, i) = (o / 12, (o / 3) % 4, o % 3)
                return v[0][b * 12 + i * 4 + j]
            }
        case "i,i": expected = [zip(v[0], v[1]).map(*).reduce(0, +)]
        case "ij->": expected = [v[0].reduce(0, +)]
        default: expected = (0..<6).map { o in v[0][(o / 3) * 9 + (o % 3) * 4] }
        }
        #expect(y.count == expected.count)
        #expect((zip(try y.doubleValues(), expected).map { abs($0 - $1) }.max() ?? 1) < 1e-5)
    }

    @Test func determinant() throws {
        let x = Tensor(
            shape: [2, 3, 3], scalars: [Float](arrayLiteral: 2, 0, 1, 1, 3, 2, 1, 1, 2, 0, 1, 0, 1, 0, 0, 0, 0, 4))
        let y = try LayerRunner.run(DeterminantLayer(), x)
        #expect(y.shape == [2])
        let d = y.scalars(as: Float.self)
        #expect(abs(d[0] - 6) < 1e-5 && abs(d[1] + 4) < 1e-5)
    }
}
