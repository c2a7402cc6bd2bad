import KilnIR
import Testing

/// The float arithmetic that rounds to E4M3 in the quantized layers against the reference encoding
/// (`MiniFloatFormat`, which follows the ONNX reference bit for bit).
@Suite struct Float8RoundingTests {
    @Test func e4m3RoundingIsTheReferenceEncodingOverTheFloatRange() {
        let format = ActivationQuantization.float8
        var mismatches: [Float] = []
        // Every 4096th float32 bit pattern of either sign: all exponents, many mantissas, ties included.
        for bits in stride(from: UInt32(0), to: UInt32.max - 4096, by: 4096) {
            let x = Float(bitPattern: bits | 0x0000_0800)
            let expected = Float(format.decode(format.encode(Double(x), saturate: true)))
            let actual = ActivationQuantization.e4m3(x)
            if actual.bitPattern != expected.bitPattern, !(actual.isNaN && expected.isNaN) { mismatches.append(x) }
        }
        // The midpoints between neighbouring E4M3 numbers and their float neighbours.
        let numbers = (0..<256).map { Float(format.decode(UInt8($0))) }.filter(\.isFinite).sorted()
        for (a, b) in zip(numbers, numbers.dropFirst()) where a != b {
            let middle = (a + b) / 2
            for x in [middle, middle.nextUp, middle.nextDown, -middle, -middle.nextUp] {
                let expected = Float(format.decode(format.encode(Double(x), saturate: true)))
                if ActivationQuantization.e4m3(x).bitPattern != expected.bitPattern { mismatches.append(x) }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) values round differently, e.g. \(mismatches.prefix(5))")
    }
}
