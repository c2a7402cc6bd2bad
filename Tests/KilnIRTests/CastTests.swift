import KilnIR
import Testing

private func bytes(_ t: Tensor) -> [UInt8] { t.withUnsafeRawBytes { Array($0) } }

@Suite struct CastTests {
    // Expected encodings are the ONNX reference's (numpy + ml_dtypes) for the same inputs.
    static let specials: [Float] = [.nan, -.nan, .infinity, -.infinity, 1e6, -1e6, 0.25, 0.75, -0.0, 5, 7, -7]

    @Test func float8WithoutSaturation() throws {
        let x = Tensor(shape: [Self.specials.count], scalars: Self.specials)
        let expected: [(DType, [UInt8])] = [
            (.float8e4m3fn, [0x7f, 0xff, 0x7f, 0xff, 0x7f, 0xff, 0x28, 0x34, 0x80, 0x4a, 0x4e, 0xce]),
            (.float8e4m3fnuz, [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x30, 0x3c, 0x00, 0x52, 0x56, 0xd6]),
            (.float8e5m2, [0x7e, 0xfe, 0x7c, 0xfc, 0x7c, 0xfc, 0x34, 0x3a, 0x80, 0x45, 0x47, 0xc7]),
            (.float8e5m2fnuz, [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x38, 0x3e, 0x00, 0x49, 0x4b, 0xcb]),
            (.float4e2m1, [0x8, 0x0, 0x7, 0xf, 0x7, 0xf, 0x0, 0x2, 0x8, 0x6, 0x7, 0xf]),
        ]
        for (dtype, want) in expected {
            let y = try x.cast(to: dtype, saturate: false)
            #expect(y.dtype == dtype && bytes(y) == want, "\(dtype)")
        }
    }

    @Test func float8RoundingNearTheTop() throws {
        let x = Tensor(
            shape: [13], scalars: [Float(464), 470, 480, 500, -464, 240, 248, 250, -1e-9, 57344, 61440, 61439, 65000])
        let expected: [(DType, [UInt8])] = [
            (.float8e4m3fn, [0x7e, 0x7f, 0x7f, 0x7f, 0xfe, 0x77, 0x78, 0x78, 0x80, 0x7f, 0x7f, 0x7f, 0x7f]),
            (.float8e4m3fnuz, [0x80, 0x80, 0x80, 0x80, 0x80, 0x7f, 0x80, 0x80, 0x00, 0x80, 0x80, 0x80, 0x80]),
            (.float8e5m2, [0x5f, 0x5f, 0x60, 0x60, 0xdf, 0x5c, 0x5c, 0x5c, 0x80, 0x7b, 0x7c, 0x7b, 0x7c]),
            (.float8e5m2fnuz, [0x63, 0x63, 0x64, 0x64, 0xe3, 0x60, 0x60, 0x60, 0x00, 0x7f, 0x80, 0x7f, 0x80]),
        ]
        for (dtype, want) in expected {
            let got = bytes(try x.cast(to: dtype, saturate: false))
            #expect(got == want, "\(dtype) \(got.map { String($0, radix: 16) })")
        }
        // Saturation clamps to the largest finite value, infinities included.
        let big = Tensor(shape: [3], scalars: [Float(1e6), -Float.infinity, 470])
        #expect(bytes(try big.cast(to: .float8e4m3fn)) == [0x7e, 0xfe, 0x7e])
        #expect(bytes(try big.cast(to: .float8e4m3fnuz)) == [0x7f, 0xff, 0x7f])
        #expect(bytes(try big.cast(to: .float8e5m2)) == [0x7b, 0xfb, 0x5f])
    }

    @Test func float8RoundTripsEveryCode() throws {
        for dtype in [DType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz] {
            let codes = (0...255).map { UInt8($0) }
            let t = try codes.withUnsafeBytes { try Tensor(dtype: dtype, shape: [256], rawBytes: $0) }
            let floats = try t.cast(to: .float32)
            let back = bytes(try floats.cast(to: dtype, saturate: false))
            let f = floats.scalars(as: Float.self)
            for i in 0..<256 where !f[i].isNaN {
                #expect(
                    back[i] == codes[i] || (f[i] == 0 && dtype != .float8e4m3fn && dtype != .float8e5m2),
                    "\(dtype) \(i)")
            }
        }
    }

    @Test func e8m0() throws {
        let x = Tensor(shape: [6], scalars: [Float(1), 3, 0.75, .nan, 1e38, 2.5])
        #expect(bytes(try x.cast(to: .float8e8m0)) == [127, 129, 127, 255, 254, 129])
        #expect(bytes(try x.cast(to: .float8e8m0, rounding: .down)) == [127, 128, 126, 255, 253, 128])
        #expect(bytes(try x.cast(to: .float8e8m0, rounding: .nearest)) == [127, 129, 127, 255, 253, 128])
        let back = try x.cast(to: .float8e8m0).cast(to: .float32).scalars(as: Float.self)
        #expect(back[0] == 1 && back[1] == 4 && back[3].isNaN)
    }

    @Test func subByteIntegersWrap() throws {
        let x = Tensor(shape: [7], scalars: [Float(-9.7), 8.5, 300, -3, -2, 3, .nan])
        #expect(
            try x.cast(to: .int4).scalars(as: UInt8.self).map { Int8(bitPattern: $0) } == [7, -8, -4, -3, -2, 3, 0])
        #expect(try x.cast(to: .uint2).scalars(as: UInt8.self) == [3, 0, 0, 1, 2, 3, 0])
        let i4 = try [UInt8(0xF8), 7].withUnsafeBytes { try Tensor(dtype: .int4, shape: [2], rawBytes: $0) }
        #expect(try i4.cast(to: .float32).scalars(as: Float.self) == [-8, 7])
        #expect(try i4.cast(to: .int8).scalars(as: Int8.self) == [-8, 7])
    }

    @Test func nativeConversions() throws {
        let f = Tensor(shape: [5], scalars: [Float(-2.7), 2.7, 300, 1e10, -0.5])
        #expect(try f.cast(to: .int32).scalars(as: Int32.self) == [-2, 2, 300, Int32.min, 0])
        #expect(try f.cast(to: .uint8).scalars(as: UInt8.self)[0...2] == [254, 2, 44])
        #expect(try f.cast(to: .bool).scalars(as: Bool.self) == [true, true, true, true, true])
        let big = Tensor(shape: [2], scalars: [UInt64.max, 1])
        #expect(try big.cast(to: .float64).scalars(as: Double.self) == [1.8446744073709552e19, 1])
        #expect(try big.cast(to: .int64).scalars(as: Int64.self) == [-1, 1])
        let h = try Tensor(shape: [2], scalars: [Float(65520), 1.0009766]).cast(to: .float16)
        #expect(h.scalars(as: Float16.self)[0].isInfinite)
        let bf = try Tensor(shape: [1], scalars: [Float(1.00390625)]).cast(to: .bfloat16)
        #expect(bf.scalars(as: BFloat16.self)[0].floatValue == 1)
    }

    /// The direct float conversions give what rounding once from the double value gives, for every float16
    /// and bfloat16 code read back and for random float32 bit patterns (subnormals, halfway cases, NaN, inf).
    @Test func directFloatConversionsRoundOnce() throws {
        var generator = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
        let random = (0..<20000).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator)) }
        let halves = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }
        let values = random + halves + halves.map { $0.nextUp } + Self.specials
        let x = Tensor(shape: [values.count], scalars: values)
        func same<T: TensorScalar>(_ a: [T], _ b: [T], _ bits: (T) -> UInt64) -> Bool {
            zip(a, b).allSatisfy { bits($0) == bits($1) || ($0.doubleValue.isNaN && $1.doubleValue.isNaN) }
        }
        let h = try x.cast(to: .float16).scalars(as: Float16.self)
        #expect(same(h, values.map { Float16(castingFrom: Double($0)) }) { UInt64($0.bitPattern) })
        let b = try x.cast(to: .bfloat16).scalars(as: BFloat16.self)
        #expect(same(b, values.map { BFloat16(castingFrom: Double($0)) }) { UInt64($0.bitPattern) })
        let backFromHalf = try x.cast(to: .float16).cast(to: .float32).scalars(as: Float.self)
        #expect(same(backFromHalf, h.map { Float($0.doubleValue) }) { UInt64($0.bitPattern) })
        let backFromBrain = try x.cast(to: .bfloat16).cast(to: .float32).scalars(as: Float.self)
        #expect(same(backFromBrain, b.map { Float($0.doubleValue) }) { UInt64($0.bitPattern) })
        let wide = try x.cast(to: .float64).scalars(as: Double.self)
        #expect(same(wide, values.map { Double($0) }) { $0.bitPattern })
    }
    @Test func strings() throws {
        let f = Tensor(shape: [8], scalars: [Float(0.1), 1, -2.5, 1e-5, 1e20, .nan, -.infinity, 123456.79])
        #expect(
            try f.cast(to: .string).strings == ["0.1", "1.0", "-2.5", "1e-05", "1e+20", "nan", "-inf", "123456.79"])
        #expect(try Tensor(shape: [2], scalars: [Int64(-3), 40]).cast(to: .string).strings == ["-3", "40"])
        #expect(try Tensor(shape: [2], scalars: [true, false]).cast(to: .string).strings == ["True", "False"])
        let s = Tensor(shape: [6], strings: ["0.5", "NaN", "INF", "-INF", " 12 ", "-1e3"])
        let parsed = try s.cast(to: .float32).scalars(as: Float.self)
        #expect(parsed[0] == 0.5 && parsed[1].isNaN && parsed[2] == .infinity && parsed[3] == -.infinity)
        #expect(parsed[4] == 12 && parsed[5] == -1000)
        #expect(try Tensor(shape: [1], strings: ["7"]).cast(to: .int64).scalars(as: Int64.self) == [7])
        #expect(throws: KilnError.self) { try Tensor(shape: [1], strings: ["seven"]).cast(to: .float32) }
    }
}
