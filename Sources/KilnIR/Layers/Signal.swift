/// A discrete Fourier transform along one axis. The signal's last dimension holds one value (real) or two
/// (real, imaginary); the result's last dimension is 2, or 1 for an inverse one-sided (real) transform.
/// Inputs: signal, optional transform length (scalar), optional axis (scalar, used when `axis` is nil).
public struct DFTLayer: Layer {
    public static let kind = LayerKind("signal.dft")
    /// The transformed axis, counted over the full rank (negative from the back); nil reads input 2.
    public var axis: Int?
    public var inverse: Bool
    /// Forward: keep the first n/2+1 bins. Inverse: the input is such a half spectrum of a real signal.
    public var onesided: Bool

    public init(axis: Int?, inverse: Bool, onesided: Bool) {
        self.axis = axis
        self.inverse = inverse
        self.onesided = onesided
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        guard x.dtype.isFloatingPoint else { throw KilnError.typeMismatch("DFT needs a floating-point signal") }
        guard var dims = x.shape else { return [.tensor(TensorType(x.dtype, nil))] }
        let rank = dims.count
        guard rank >= 2 else { throw KilnError.shapeMismatch("DFT signal needs rank >= 2, has \(rank)") }
        if let last = dims[rank - 1].value, last != 1 && last != 2 {
            throw KilnError.shapeMismatch("DFT signal's last dimension must be 1 or 2, is \(last)")
        }
        var resolved = axis
        if resolved == nil, inputs.count > 2, let c = inputs[2].constant, let v = try? c.scalarInt() { resolved = v }
        var length: Int? = nil
        if inputs.count > 1, inputs[1].isPresent {
            guard let c = inputs[1].constant else {
                return [.tensor(TensorType(x.dtype, Self.outputRankOnly(dims, inverse: inverse, onesided: onesided)))]
            }
            length = try c.scalarInt()
        }
        guard let a0 = resolved else {
            return [.tensor(TensorType(x.dtype, Self.outputRankOnly(dims, inverse: inverse, onesided: onesided)))]
        }
        let a = ((a0 % rank) + rank) % rank
        guard a < rank - 1 else { throw KilnError.invalidArgument("DFT axis \(a0) is the complex dimension") }
        let n: Int? = length ?? dims[a].value.map { inverse && onesided ? 2 * ($0 - 1) : $0 }
        if let n {
            dims[a] = .value(!inverse && onesided ? n / 2 + 1 : n)
        } else {
            dims[a] = .unknown
        }
        dims[rank - 1] = .value(inverse && onesided ? 1 : 2)
        return [.tensor(TensorType(x.dtype, dims))]
    }

    static func outputRankOnly(_ dims: [Dim], inverse: Bool, onesided: Bool) -> [Dim] {
        var out = dims.map { _ in Dim.unknown }
        out[out.count - 1] = .value(inverse && onesided ? 1 : 2)
        return out
    }

    public var description: String {
        "axis=\(axis.map(String.init) ?? "input") inverse=\(inverse) onesided=\(onesided)"
    }
}

/// Short-time Fourier transform of a [batch, length, 1|2] signal into [batch, frames, bins, 2].
/// Inputs: signal, frame step (scalar), optional window [frame_length], optional frame length (scalar).
public struct STFTLayer: Layer {
    public static let kind = LayerKind("signal.stft")
    public var onesided: Bool

    public init(onesided: Bool) { self.onesided = onesided }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        guard let shape = x.shape else { return [.tensor(TensorType(x.dtype, [.unknown, .unknown, .unknown, 2]))] }
        guard shape.count == 3 else { throw KilnError.shapeMismatch("STFT signal must be [batch, length, 1|2]") }
        var frameLength: Int? = nil
        if inputs.count > 3, let c = inputs[3].constant { frameLength = try c.scalarInt() }
        if frameLength == nil, inputs.count > 2, let w = inputs[2].tensorType?.shape, w.count == 1 {
            frameLength = w[0].value
        }
        var frames = Dim.unknown
        if inputs.count > 1, let step = try inputs[1].constant?.scalarInt(), let n = shape[1].value,
            let fl = frameLength, step > 0, n >= fl
        {
            frames = .value(1 + (n - fl) / step)
        }
        let bins: Dim = frameLength.map { .value(onesided ? $0 / 2 + 1 : $0) } ?? .unknown
        return [.tensor(TensorType(x.dtype, [shape[0], frames, bins, 2]))]
    }

    public var description: String { "onesided=\(onesided)" }
}

/// A window function of the length given by a scalar input (Hann, Hamming, Blackman).
public struct WindowLayer: Layer {
    public enum Function: String, Sendable, Codable { case hann, hamming, blackman }
    public static let kind = LayerKind("signal.window")
    public var function: Function
    /// Periodic windows have period `size` (for spectral analysis); symmetric ones have period `size - 1`.
    public var periodic: Bool
    public var dtype: DType

    public init(function: Function, periodic: Bool, dtype: DType) {
        self.function = function
        self.periodic = periodic
        self.dtype = dtype
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        if let c = inputs.first?.constant, let n = try? c.scalarInt() { return [.tensor(TensorType(dtype, dims: [n]))] }
        return [.tensor(TensorType(dtype, [.unknown]))]
    }

    public var description: String { "function=\(function.rawValue) periodic=\(periodic) dtype=\(dtype)" }
}

/// The matrix that maps a linear magnitude spectrum onto mel-scale bins: [dft_length/2+1, num_mel_bins].
/// Inputs: num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz (all scalars).
public struct MelWeightMatrixLayer: Layer {
    public static let kind = LayerKind("signal.melWeightMatrix")
    public var dtype: DType

    public init(dtype: DType) { self.dtype = dtype }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        var dims: [Dim] = [.unknown, .unknown]
        if inputs.count > 1, let c = inputs[1].constant, let n = try? c.scalarInt() { dims[0] = .value(n / 2 + 1) }
        if let c = inputs.first?.constant, let n = try? c.scalarInt() { dims[1] = .value(n) }
        return [.tensor(TensorType(dtype, dims))]
    }

    public var description: String { "dtype=\(dtype)" }
}
