import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCPU

/// Reads any numeric tensor as doubles for comparisons.
private func values(_ t: Tensor) throws -> [Double] { try t.doubleValues() }

/// The flat input index each output element reads under numpy broadcasting, computed the slow obvious way.
private func naiveIndex(_ outIndex: Int, out: [Int], input: [Int]) -> Int {
    var rest = outIndex
    var coords = [Int](repeating: 0, count: out.count)
    for axis in stride(from: out.count - 1, through: 0, by: -1) {
        coords[axis] = rest % out[axis]
        rest /= out[axis]
    }
    var index = 0
    let offset = out.count - input.count
    for axis in input.indices {
        index = index * input[axis] + (input[axis] == 1 ? 0 : coords[axis + offset])
    }
    return index
}

@Suite struct ElementwiseUnaryTests {
    static let cases: [(UnaryOp, @Sendable (Double) -> Double)] = [
        (.relu, { Swift.max($0, 0) }),
        (.exp, { Foundation.exp($0) }),
        (.tanh, { Foundation.tanh($0) }),
        (.sigmoid, { 1 / (1 + Foundation.exp(-$0)) }),
        (.leakyRelu(alpha: 0.1), { $0 < 0 ? 0.1 * $0 : $0 }),
        (.elu(alpha: 2), { $0 < 0 ? 2 * (Foundation.exp($0) - 1) : $0 }),
        (.hardSwish, { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) }),
        (.softplus, { Foundation.log(Foundation.exp($0) + 1) }),
        (.gelu(tanh: false), { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }),
        (
            .gelu(tanh: true),
            { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
        ),
        (.mish, { $0 * Foundation.tanh(Foundation.log(1 + Foundation.exp($0))) }),
        (.round, { $0.rounded(.toNearestOrEven) }),
        (.sign, { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }),
        (.shrink(bias: 0.5, lambda: 1), { $0 < -1 ? $0 + 0.5 : ($0 > 1 ? $0 - 0.5 : 0) }),
    ]

    @Test(arguments: cases.indices)
    func floatOpsMatchReference(_ index: Int) throws {
        let (op, reference) = Self.cases[index]
        var rng = SeededGenerator(seed: UInt64(index) + 1)
        // Big enough to take the parallel path.
        let x = Tensor.random([3, 70_000], in: -4...4, using: &rng)
        let y = try LayerRunner.run(UnaryLayer(op), x)
        #expect(y.dtype == .float32 && y.shape == x.shape)
        let expected = try values(x).map(reference)
        let got = try values(y)
        for i in stride(from: 0, to: got.count, by: 97) {
            #expect(Swift.abs(got[i] - expected[i]) <= 1e-5 + 1e-4 * Swift.abs(expected[i]), "\(op) at \(x)")
        }
    }

    @Test func float16AndIntegers() throws {
        let h = Tensor(shape: [4], scalars: [Float16(-1.5), 0.25, 2, -0])
        let r = try LayerRunner.run(UnaryLayer(.relu), h)
        #expect(r.dtype == .float16 && r.scalars(as: Float16.self) == [0, 0.25, 2, 0])
        let i = Tensor(shape: [3], scalars: [Int8(-128), -3, 7])
        #expect(try LayerRunner.run(UnaryLayer(.abs), i).scalars(as: Int8.self) == [-128, 3, 7])
        #expect(try LayerRunner.run(UnaryLayer(.bitwiseNot), i).scalars(as: Int8.self) == [127, 2, -8])
        let f = Tensor(shape: [4], scalars: [Float.nan, .infinity, -.infinity, 1])
        let inf = try LayerRunner.run(UnaryLayer(.isInf(negative: false, positive: true)), f)
        #expect(inf.scalars(as: Bool.self) == [false, true, false, false])
        #expect(try LayerRunner.run(UnaryLayer(.isNaN), f).scalars(as: Bool.self) == [true, false, false, false])
        #expect(throws: KilnError.self) { try LayerRunner.run(UnaryLayer(.exp), i) }
    }

    @Test func integerShrinkAndCastLike() throws {
        let i = Tensor(shape: [5], scalars: [Int32(-5), -1, 0, 1, 5])
        let shrunk = try LayerRunner.run(UnaryLayer(.shrink(bias: 1, lambda: 1.5)), i)
        #expect(shrunk.scalars(as: Int32.self) == [-4, 0, 0, 0, 4])
        let like = try LayerRunner.run(
            CastLikeLayer(), Tensor(shape: [2], scalars: [Float(2.7), -1]), Tensor(shape: [0], scalars: [Int8]()))
        #expect(like.dtype == .int8 && like.scalars(as: Int8.self) == [2, -1])
    }

    @Test func clipBoundsFromInputsAndParameters() throws {
        let x = Tensor(shape: [5], scalars: [Float(-3), -1, 0, 1, 3])
        let both = try LayerRunner.run(
            ClipLayer(), inputs: [.tensor(x), .tensor(Tensor(scalar: Float(-1))), .tensor(Tensor(scalar: Float(2)))])
        #expect(try both[0].asTensor().scalars(as: Float.self) == [-1, -1, 0, 1, 2])
        let maxOnly = try LayerRunner.run(ClipLayer(), inputs: [.tensor(x), nil, .tensor(Tensor(scalar: Float(0)))])
        #expect(try maxOnly[0].asTensor().scalars(as: Float.self) == [-3, -1, 0, 0, 0])
        // min > max gives max everywhere.
        let inverted = try LayerRunner.run(ClipLayer(min: 2, max: 1), x)
        #expect(inverted.scalars(as: Float.self) == [1, 1, 1, 1, 1])
        let ints = Tensor(shape: [3], scalars: [Int64.min, 0, Int64.max])
        let clipped = try LayerRunner.run(
            ClipLayer(),
            inputs: [.tensor(ints), .tensor(Tensor(scalar: Int64.min + 1)), .tensor(Tensor(scalar: Int64.max))])
        #expect(try clipped[0].asTensor().scalars(as: Int64.self) == [Int64.min + 1, 0, Int64.max])
    }
}

@Suite struct ElementwiseBinaryTests {
    static let shapes: [([Int], [Int])] = [
        ([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([1, 3, 1], [2, 1, 5]), ([], [3, 2]),
        ([4, 1, 3, 5], [2, 1, 1]), ([2, 64, 300], [64, 1]),
    ]

    @Test(arguments: shapes.indices)
    func broadcastingMatchesNaiveIndexing(_ index: Int) throws {
        let (sa, sb) = Self.shapes[index]
        var rng = SeededGenerator(seed: 42 + UInt64(index))
        let a = Tensor.random(sa, using: &rng)
        let b = Tensor.random(sb, in: 0.5...2, using: &rng)
        let out = try Broadcast.shape(sa, sb)
        let av = try values(a)
        let bv = try values(b)
        let ops: [(BinaryOp, (Double, Double) -> Double)] = [
            (.add, +), (.sub, -), (.mul, *), (.div, /), (.max, { Swift.max($0, $1) }),
            (.pow, { Foundation.pow(Swift.abs($0), $1) }),
        ]
        for (op, reference) in ops {
            let lhs = op == .pow ? try LayerRunner.run(UnaryLayer(.abs), a) : a
            let y = try LayerRunner.run(BinaryLayer(op), lhs, b)
            #expect(y.shape == out)
            let got = try values(y)
            for i in got.indices {
                let e = reference(av[naiveIndex(i, out: out, input: sa)], bv[naiveIndex(i, out: out, input: sb)])
                if Swift.abs(got[i] - e) > 1e-5 * Swift.max(1, Swift.abs(e)) {
                    Issue.record("\(op) \(sa) \(sb) at \(i): \(got[i]) vs \(e)")
                    break
                }
            }
        }
        let less = try LayerRunner.run(BinaryLayer(.less), a, b)
        #expect(less.dtype == .bool && less.shape == out)
    }

    @Test func integerDivisionAndModulo() throws {
        let a = Tensor(shape: [6], scalars: [Int32(7), -7, 7, -7, 5, Int32.min])
        let b = Tensor(shape: [6], scalars: [Int32(2), 2, -2, -2, 0, -1])
        #expect(try LayerRunner.run(BinaryLayer(.div), a, b).scalars(as: Int32.self) == [3, -3, -3, 3, 0, Int32.min])
        #expect(
            try LayerRunner.run(BinaryLayer(.mod(fmod: false)), a, b).scalars(as: Int32.self) == [1, 1, -1, -1, 0, 0])
        #expect(
            try LayerRunner.run(BinaryLayer(.mod(fmod: true)), a, b).scalars(as: Int32.self) == [1, -1, 1, -1, 0, 0])
        let fa = Tensor(shape: [4], scalars: [Float(-3), 3, 0, 5.5])
        let fb = Tensor(shape: [4], scalars: [Float.infinity, -2, -2, 2])
        let m = try LayerRunner.run(BinaryLayer(.mod(fmod: false)), fa, fb).scalars(as: Float.self)
        #expect(m[0] == .infinity && m[1] == -1 && m[2] == 0 && m[2].sign == .minus && m[3] == 1.5)
    }

    @Test func powMixedTypesAndShifts() throws {
        let base = Tensor(shape: [3], scalars: [Float(2), 3, 0.5])
        let exponent = Tensor(shape: [3], scalars: [Int64(3), -1, 2])
        #expect(
            try LayerRunner.run(BinaryLayer(.pow), base, exponent).scalars(as: Float.self) == [8, Float(1) / 3, 0.25])
        let ib = Tensor(shape: [3], scalars: [Int32(1), 2, 3])
        let fe = Tensor(shape: [3], scalars: [Float(4), 5, 6])
        #expect(try LayerRunner.run(BinaryLayer(.pow), ib, fe).scalars(as: Int32.self) == [1, 32, 729])
        let x = Tensor(shape: [4], scalars: [Int8(-8), 4, -1, 16])
        let s = Tensor(shape: [4], scalars: [Int8(1), -1, 9, 2])
        #expect(try LayerRunner.run(BinaryLayer(.shiftRight), x, s).scalars(as: Int8.self) == [-4, 0, -1, 4])
        #expect(try LayerRunner.run(BinaryLayer(.shiftLeft), x, s).scalars(as: Int8.self) == [-16, 0, 0, 64])
    }

    @Test func logicStringsAndHalfPrecision() throws {
        let p = Tensor(shape: [4], scalars: [true, true, false, false])
        let q = Tensor(shape: [4], scalars: [true, false, true, false])
        #expect(try LayerRunner.run(BinaryLayer(.xor), p, q).scalars(as: Bool.self) == [false, true, true, false])
        #expect(try LayerRunner.run(BinaryLayer(.and), p, q).scalars(as: Bool.self) == [true, false, false, false])
        let s = Tensor(shape: [2, 2], strings: ["a", "b", "c", "d"])
        let t = Tensor(shape: [2], strings: ["a", "d"])
        #expect(try LayerRunner.run(BinaryLayer(.equal), s, t).scalars(as: Bool.self) == [true, false, false, true])
        let h = Tensor(shape: [2], scalars: [Float16(1.5), -2])
        let sum = try LayerRunner.run(BinaryLayer(.add), h, h)
        #expect(sum.dtype == .float16 && sum.scalars(as: Float16.self) == [3, -4])
        let bf = Tensor(shape: [2], scalars: [BFloat16(1.5), BFloat16(-2)])
        #expect(
            try LayerRunner.run(BinaryLayer(.mul), bf, bf).scalars(as: BFloat16.self).map(\.floatValue) == [2.25, 4])
    }

    @Test func typeInference() throws {
        let a = LayerInput(type: .tensor(TensorType(.float32, [.symbol("N"), 3, 1])))
        let b = LayerInput(type: .tensor(TensorType(.float32, [4])))
        #expect(try BinaryLayer(.add).inferTypes([a, b]) == [.tensor(TensorType(.float32, [.symbol("N"), 3, 4]))])
        #expect(try BinaryLayer(.equal).inferTypes([a, b]) == [.tensor(TensorType(.bool, [.symbol("N"), 3, 4]))])
        let i = LayerInput(type: .tensor(TensorType(.int64, [4])))
        #expect(throws: KilnError.self) { try BinaryLayer(.add).inferTypes([a, i]) }
        #expect(try BinaryLayer(.pow).inferTypes([a, i]) == [.tensor(TensorType(.float32, [.symbol("N"), 3, 4]))])
        #expect(try UnaryLayer(.isNaN).inferTypes([a]) == [.tensor(TensorType(.bool, [.symbol("N"), 3, 1]))])
        #expect(throws: KilnError.self) { try UnaryLayer(.not).inferTypes([a]) }
        #expect(try CastLayer(to: .int8).inferTypes([a]) == [.tensor(TensorType(.int8, [.symbol("N"), 3, 1]))])
        let c = LayerInput(type: .tensor(TensorType(.bool, [2, 1, 1])))
        #expect(try SelectLayer().inferTypes([c, a, b]) == [.tensor(TensorType(.float32, [2, 3, 4]))])
    }
}

@Suite struct ElementwiseVariadicAndSelectTests {
    @Test func meanMaxSumBroadcast() throws {
        let a = Tensor(shape: [2, 1], scalars: [Float(1), 4])
        let b = Tensor(shape: [3], scalars: [Float(2), 5, -1])
        let c = Tensor(scalar: Float(3))
        let inputs: [Value?] = [.tensor(a), .tensor(b), .tensor(c)]
        let mean = try LayerRunner.run(VariadicLayer(.mean), inputs: inputs)[0].asTensor()
        #expect(mean.shape == [2, 3] && mean.scalars(as: Float.self) == [2, 3, 1, 3, 4, 2])
        let maximum = try LayerRunner.run(VariadicLayer(.max), inputs: inputs)[0].asTensor()
        #expect(maximum.scalars(as: Float.self) == [3, 5, 3, 4, 5, 4])
        let single = try LayerRunner.run(VariadicLayer(.sum), inputs: [.tensor(b)])[0].asTensor()
        #expect(single.scalars(as: Float.self) == [2, 5, -1])
        let ints = Tensor(shape: [2], scalars: [UInt8(3), 200])
        let m = try LayerRunner.run(VariadicLayer(.min), inputs: [.tensor(ints), .tensor(Tensor(scalar: UInt8(100)))])
        #expect(try m[0].asTensor().scalars(as: UInt8.self) == [3, 100])
    }

    @Test func selectBroadcastsAllThree() throws {
        var rng = SeededGenerator(seed: 7)
        let cond = Tensor(shape: [2, 1, 3], scalars: [true, false, true, false, false, true])
        let x = Tensor.random([4, 3], using: &rng)
        let y = Tensor.random([1], using: &rng)
        let out = try LayerRunner.run(SelectLayer(), cond, x, y)
        #expect(out.shape == [2, 4, 3])
        let (cv, xv, yv, ov) = (cond.scalars(as: Bool.self), try values(x), try values(y), try values(out))
        for i in ov.indices {
            let e =
                cv[naiveIndex(i, out: [2, 4, 3], input: [2, 1, 3])]
                ? xv[naiveIndex(i, out: [2, 4, 3], input: [4, 3])] : yv[0]
            #expect(ov[i] == e)
        }
        let s = try LayerRunner.run(
            SelectLayer(), Tensor(shape: [2], scalars: [true, false]),
            Tensor(shape: [2], strings: ["a", "b"]), Tensor(shape: [], strings: ["z"]))
        #expect(s.strings == ["a", "z"])
    }
}
