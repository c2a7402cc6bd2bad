import Foundation
import KilnIR

extension SeededGenerator {
    /// A fresh seed for one test each run, or `KILN_TEST_SEED` to replay the seed a failure printed.
    public static func testSeed() -> UInt64 {
        ProcessInfo.processInfo.environment["KILN_TEST_SEED"].flatMap(UInt64.init) ?? .random(in: 1...UInt64.max)
    }
}

extension Tensor {
    /// Uniform random floats in `range`, never all zeros.
    public static func random(
        _ shape: [Int], in range: ClosedRange<Float> = -1...1, using generator: inout SeededGenerator
    ) -> Tensor {
        Tensor(
            shape: shape,
            scalars: (0..<Tensor.elementCount(shape)).map { _ in Float.random(in: range, using: &generator) })
    }

    /// Uniform random integers of type T in `range`.
    public static func randomIntegers<T: TensorScalar & FixedWidthInteger>(
        _ type: T.Type, _ shape: [Int], in range: ClosedRange<T>, using generator: inout SeededGenerator
    ) -> Tensor {
        Tensor(
            shape: shape, scalars: (0..<Tensor.elementCount(shape)).map { _ in T.random(in: range, using: &generator) })
    }
}
