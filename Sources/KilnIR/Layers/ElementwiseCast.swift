/// How a conversion to float8e8m0 (a power of two) rounds values between two powers.
public enum E8M0Rounding: String, Sendable, Hashable {
    case up, down, nearest
}

/// Converts elements to another dtype (`cast`, ONNX Cast and CastLike), with ONNX's rules: floats to integers
/// truncate and wrap, `saturate` clamps out-of-range values for float8 targets, strings parse and print.
public struct CastLayer: Layer {
    public static let kind = LayerKind("cast")
    public var to: DType
    public var saturate: Bool
    public var rounding: E8M0Rounding

    public init(to: DType, saturate: Bool = true, rounding: E8M0Rounding = .up) {
        self.to = to
        self.saturate = saturate
        self.rounding = rounding
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 1 else { throw KilnError.invalidModel("cast takes 1 input, got \(inputs.count)") }
        guard let t = inputs[0].tensorType else { return [.tensor(TensorType(to, nil))] }
        return [.tensor(TensorType(to, t.shape))]
    }

    public var description: String {
        var text = "to=\(to)"
        if !saturate { text += " saturate=0" }
        if rounding != .up { text += " round_mode=\(rounding.rawValue)" }
        return text
    }
}
