import KilnIR

/// A small deterministic generator (SplitMix64) so tests are reproducible from a printed seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
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
