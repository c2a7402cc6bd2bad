import KilnIR

/// The CPU runs channels-last layers (`ChannelsLast`) as their channels-first form between two copies: the
/// layout exists for the GPU's tensor cores, and here it only has to give the same numbers.
enum ChannelsLastKernels {
    /// `x` (a float tensor) with every element above `high` replaced by `high`; NaN stays NaN.
    static func clamped(_ x: Tensor, above high: Float) throws -> Tensor {
        let wide = try x.cast(to: .float32)
        let values = wide.scalars(as: Float.self).map { $0 > high ? high : $0 }
        return try Tensor(shape: x.shape, scalars: values).cast(to: x.dtype)
    }

    /// Runs `channelsFirst` on the inputs at `permuting` (activations, a convolution's weights) moved to
    /// channels-first and moves every output of their rank back to channels-last.
    static func run(
        _ inputs: [Value?], permuting: Set<Int>, threads: Int, _ channelsFirst: ([Value?]) throws -> [Value]
    ) throws -> [Value] {
        let rank = try inputs.tensor(0).rank
        guard rank >= 3 else {
            throw KilnError.shapeMismatch("a channels-last layer needs an [N, spatial..., C] input, got rank \(rank)")
        }
        let first = ChannelsLast.toFirst(rank: rank)
        let converted = try inputs.enumerated().map { i, value -> Value? in
            guard permuting.contains(i), value != nil else { return value }
            let t = try inputs.tensor(i)
            guard t.rank == rank else {
                throw KilnError.shapeMismatch("channels-last input \(i) has rank \(t.rank), not \(rank)")
            }
            return .tensor(ShapeCopy.permuted(t, first, threads: threads))
        }
        return try channelsFirst(converted).map { value in
            guard case .tensor(let t) = value, t.rank == rank else { return value }
            return .tensor(ShapeCopy.permuted(t, ChannelsLast.fromFirst(rank: rank), threads: threads))
        }
    }
}
