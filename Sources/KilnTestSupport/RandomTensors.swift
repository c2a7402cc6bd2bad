import KilnIR

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
