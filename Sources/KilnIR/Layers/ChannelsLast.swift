/// The axis orders of channels-last data. A layer with `channelsLast` set stores an activation
/// `[N, C, spatial...]` as `[N, spatial..., C]` and a convolution's weights `[M, C/group, kernel...]` as
/// `[M, kernel..., C/group]`: the layout tensor-core convolutions read without reformatting.
public enum ChannelsLast {
    /// The permutation that takes a channels-first tensor of `rank` to channels-last: `[0, 2, ..., rank-1, 1]`.
    public static func fromFirst(rank: Int) -> [Int] { [0] + Array(2..<max(rank, 2)) + [1] }

    /// The permutation that takes a channels-last tensor of `rank` back to channels-first:
    /// `[0, rank-1, 1, ..., rank-2]`.
    public static func toFirst(rank: Int) -> [Int] { [0, rank - 1] + Array(1..<max(rank - 1, 1)) }

    /// `dims` reordered by `perm` (`result[i] = dims[perm[i]]`).
    public static func permuted<T>(_ dims: [T], _ perm: [Int]) -> [T] { perm.map { dims[$0] } }

    /// A tensor type in the other layout (through `perm`); unknown shapes stay unknown.
    static func permuted(_ input: LayerInput, _ perm: [Int]) -> LayerInput {
        guard let t = input.tensorType, let shape = t.shape, shape.count == perm.count else {
            return LayerInput(type: input.type, isPresent: input.isPresent)
        }
        return LayerInput(type: .tensor(TensorType(t.dtype, permuted(shape, perm))), isPresent: input.isPresent)
    }

    /// Infers a channels-last layer's types through its channels-first form: the inputs at `permuting`
    /// (activations, a convolution's weights) are permuted to channels-first, the layer's own rule runs, and
    /// every output of the same rank is permuted back.
    static func inferTypes(
        _ inputs: [LayerInput], permuting: Set<Int>, _ channelsFirst: ([LayerInput]) throws -> [ValueType?]
    ) rethrows -> [ValueType?] {
        guard let rank = inputs.first?.tensorType?.shape?.count, rank >= 3 else { return try channelsFirst(inputs) }
        let first = toFirst(rank: rank)
        let converted = inputs.enumerated().map { i, input in
            permuting.contains(i) ? permuted(input, first) : input
        }
        return try channelsFirst(converted).map { type in
            guard case .tensor(let t)? = type, let shape = t.shape, shape.count == rank else { return type }
            return .tensor(TensorType(t.dtype, permuted(shape, fromFirst(rank: rank))))
        }
    }
}

extension Tensor {
    /// This tensor with its axes reordered by `perm` (`result.shape[i] = shape[perm[i]]`), copied element by
    /// element; for constants (weights moved to another layout at build time).
    public func permuted(_ perm: [Int]) throws -> Tensor {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw KilnError.invalidArgument("perm \(perm) is not a permutation of rank \(rank)")
        }
        guard dtype != .string, dtype.byteSize > 0 else {
            throw KilnError.unsupported("permuting a \(dtype.onnxName) tensor")
        }
        let size = dtype.byteSize
        let outShape = perm.map { shape[$0] }
        let sourceStrides = Broadcast.strides(shape)
        let strides = perm.map { sourceStrides[$0] }
        var bytes = [UInt8](repeating: 0, count: byteCount)
        withUnsafeRawBytes { source in
            var index = [Int](repeating: 0, count: rank)
            var offset = 0
            for element in 0..<count {
                for b in 0..<size { bytes[element * size + b] = source[offset * size + b] }
                var axis = rank - 1
                while axis >= 0 {
                    index[axis] += 1
                    offset += strides[axis]
                    if index[axis] < outShape[axis] { break }
                    offset -= strides[axis] * outShape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        return try bytes.withUnsafeBytes { try Tensor(dtype: dtype, shape: outShape, rawBytes: $0) }
    }
}
