import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// Quantize/dequantize against formulas evaluated here, float8 against known encodings, and the quantized
/// matrix product against an integer reference.
struct QuantizationTests {
    @Test func perAxisQuantizeMatchesTheFormula() throws {
        var gen = SeededGenerator(seed: 21)
        let x = Tensor.random([2, 3, 4], in: -5...5, using: &gen)
        let scales: [Float] = [0.05, 0.1, 0.02]
        let zeros: [Int8] = [-3, 0, 5]
        let out = try LayerRunner.run(
            QuantizeLayer(axis: 1), x, Tensor(shape: [3], scalars: scales), Tensor(shape: [3], scalars: zeros))
        #expect(out.dtype == .int8)
        let xv = x.scalars(as: Float.self)
        let expected: [Int8] = xv.indices.map { i in
            let c = (i / 4) % 3
            let q = (xv[i] / scales[c]).rounded(.toNearestOrEven) + Float(zeros[c])
            return Int8(min(127, max(-128, q)))
        }
        #expect(out.scalars(as: Int8.self) == expected)
        let back = try LayerRunner.run(
            DequantizeLayer(axis: 1), out, Tensor(shape: [3], scalars: scales), Tensor(shape: [3], scalars: zeros))
        let bv = back.scalars(as: Float.self)
        for i in xv.indices where expected[i] > -128 && expected[i] < 127 {
            #expect(abs(bv[i] - xv[i]) <= scales[(i / 4) % 3] / 2 + 1e-6)
        }
    }

    @Test func blockedDequantizeUsesOneScalePerBlock() throws {
        var gen = SeededGenerator(seed: 22)
        let x = Tensor.randomIntegers(UInt8.self, [2, 5], in: 0...255, using: &gen)
        let scale = Tensor.random([2, 3], in: 0.01...1, using: &gen)
        let out = try LayerRunner.run(DequantizeLayer(axis: 1, blockSize: 2), x, scale)
        let xv = x.scalars(as: UInt8.self)
        let sv = scale.scalars(as: Float.self)
        let expected = xv.indices.map { i in Float(xv[i]) * sv[(i / 5) * 3 + (i % 5) / 2] }
        #expect(Comparison.mismatch(out, Tensor(shape: [2, 5], scalars: expected)) == nil)
    }

    @Test func float8EncodingsMatchTheFormats() throws {
        let x = Tensor(shape: [6], scalars: [Float(1), -2, 448, 1000, 0.0625, 1.0625])
        let out = try LayerRunner.run(
            QuantizeLayer(outputType: .float8e4m3fn), x, Tensor(scalar: Float(1)),
            Tensor(dtype: .float8e4m3fn, shape: [], storage: Tensor(scalar: UInt8(0)).storage))
        #expect(out.dtype == .float8e4m3fn)
        // 1.0625 lies halfway between 1 and 1.125 and rounds to the even mantissa (1.0); 1000 saturates to 448.
        #expect(out.withUnsafeRawBytes { Array($0) } == [0x38, 0xC0, 0x7E, 0x7E, 0x18, 0x38])
        let back = try LayerRunner.run(DequantizeLayer(), out, Tensor(scalar: Float(2)))
        #expect(back.scalars(as: Float.self) == [2, -4, 896, 896, 0.125, 2])
    }

    @Test func int4QuantizeClampsToItsRange() throws {
        let x = Tensor(shape: [4], scalars: [Float(-20), -1.5, 2.5, 30])
        let out = try LayerRunner.run(QuantizeLayer(outputType: .int4), x, Tensor(scalar: Float(1)))
        #expect(out.dtype == .int4)
        #expect(out.withUnsafeRawBytes { $0.map { Int8(bitPattern: $0) } } == [-8, -2, 2, 7])
    }

    @Test func qlinearMatMulMatchesIntegerReference() throws {
        var gen = SeededGenerator(seed: 23)
        let a = Tensor.randomIntegers(UInt8.self, [3, 4], in: 0...255, using: &gen)
        let b = Tensor.randomIntegers(UInt8.self, [4, 2], in: 0...255, using: &gen)
        let (sa, sb, sy): (Float, Float, Float) = (0.02, 0.01, 0.5)
        let (za, zb, zy): (UInt8, UInt8, UInt8) = (120, 130, 100)
        let inputs: [Value?] = [
            a, Tensor(scalar: sa), Tensor(scalar: za), b, Tensor(scalar: sb), Tensor(scalar: zb), Tensor(scalar: sy),
            Tensor(scalar: zy),
        ].map { .tensor($0) }
        let out = try LayerRunner.run(QLinearMatMulLayer(), inputs: inputs)[0].asTensor()
        let av = a.scalars(as: UInt8.self)
        let bv = b.scalars(as: UInt8.self)
        var expected: [UInt8] = []
        for i in 0..<3 {
            for j in 0..<2 {
                var acc = 0
                for k in 0..<4 { acc += (Int(av[i * 4 + k]) - Int(za)) * (Int(bv[k * 2 + j]) - Int(zb)) }
                let r = (Double(acc) * Double(sa * sb / sy) + Double(zy)).rounded(.toNearestOrEven)
                expected.append(UInt8(min(255, max(0, r))))
            }
        }
        #expect(out.scalars(as: UInt8.self) == expected)
    }

    @Test func dynamicQuantizeCoversTheRange() throws {
        var gen = SeededGenerator(seed: 24)
        let x = Tensor.random([10], in: -3...2, using: &gen)
        let outs = try LayerRunner.run(DynamicQuantizeLayer(), inputs: [.tensor(x)], outputCount: 3)
        let scale = try outs[1].asTensor().scalars(as: Float.self)[0]
        let xv = x.scalars(as: Float.self)
        let lo = min(0, xv.min() ?? 0)
        let hi = max(0, xv.max() ?? 0)
        #expect(abs(scale - (hi - lo) / 255) < 1e-7)
        let zero = try outs[2].asTensor().scalars(as: UInt8.self)[0]
        #expect(zero == UInt8((-lo / scale).rounded(.toNearestOrEven)))
    }
}
