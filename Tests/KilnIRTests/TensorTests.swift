import KilnIR
import Testing

@Suite struct TensorTests {
    @Test func roundTripsScalars() throws {
        let t = Tensor(shape: [2, 2], scalars: [Int32(1), -2, 3, 4])
        #expect(t.dtype == .int32)
        #expect(t.scalars(as: Int32.self) == [1, -2, 3, 4])
        #expect(try t.int64Values() == [1, -2, 3, 4])
        #expect(try t.reshaped([4]).shape == [4])
        #expect(throws: KilnError.self) { try t.reshaped([3]) }
    }

    @Test func bfloat16RoundsToNearestEven() {
        #expect(BFloat16(Float(1.0)).floatValue == 1.0)
        // 1 + 2^-8 lies exactly between two bfloat16 values; ties go to the even one (1.0).
        #expect(BFloat16(Float(1.00390625)).floatValue == 1.0)
        #expect(BFloat16(Float(1.01171875)).floatValue == 1.015625)
        #expect(BFloat16(Float.nan).floatValue.isNaN)
    }

    @Test func castingFromDoubleTruncatesTowardZero() {
        #expect(Int8(castingFrom: -3.7) == -3)
        #expect(UInt8(castingFrom: 255.9) == 255)
        #expect(Int32(castingFrom: Double.nan) == 0)
    }

    @Test func rawBytesMustMatchTheShape() {
        let bytes: [UInt8] = [1, 2, 3]
        #expect(throws: KilnError.self) {
            try bytes.withUnsafeBytes { try Tensor(dtype: .float32, shape: [1], rawBytes: $0) }
        }
    }
}
