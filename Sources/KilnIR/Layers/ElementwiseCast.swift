/// How a conversion to float8e8m0 (a power of two) rounds values between two powers.
public enum E8M0Rounding: String, Sendable, Hashable, Codable {
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

/// Cast to the element type of the second input (`cast.like`), for ONNX CastLike when that type is not known at
/// import; when it is, the importer emits a plain `cast`.
public struct CastLikeLayer: Layer {
    public static let kind = LayerKind("cast.like")
    public var saturate: Bool
    public var rounding: E8M0Rounding

    public init(saturate: Bool = true, rounding: E8M0Rounding = .up) {
        self.saturate = saturate
        self.rounding = rounding
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 2 else { throw KilnError.invalidModel("cast.like takes 2 inputs, got \(inputs.count)") }
        guard let target = inputs[1].tensorType?.dtype else { return [nil] }
        return [.tensor(TensorType(target, inputs[0].tensorType?.shape))]
    }

    public var description: String {
        var parts: [String] = []
        if !saturate { parts.append("saturate=0") }
        if rounding != .up { parts.append("round_mode=\(rounding.rawValue)") }
        return parts.joined(separator: " ")
    }
}
