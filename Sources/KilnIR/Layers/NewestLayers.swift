/// Layers for the newest ONNX operators (opsets 24-28) that no older layer kind expresses: BitCast, SwiGLU and
/// TensorScatter.

/// Reinterprets the bytes of a tensor as another element type of the same width (ONNX BitCast).
public struct BitCastLayer: Layer {
    public static let kind = LayerKind("bitCast")

    public var to: DType

    public init(to: DType) { self.to = to }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        guard input.dtype.byteSize == to.byteSize, to.byteSize > 0 else {
            throw KilnError.typeMismatch("bitCast from \(input.dtype) to \(to): element widths differ")
        }
        return [.tensor(TensorType(to, input.shape))]
    }

    public var description: String { "to=\(to)" }
}

/// A gated activation of two same-shaped inputs: `swish_alpha(a) * b` (ONNX SwiGLU).
public struct GatedActivationLayer: Layer {
    public static let kind = LayerKind("gatedActivation")

    /// The gate's activation.
    public enum Gate: String, Sendable, Codable {
        /// `a * sigmoid(alpha * a)`.
        case swish
    }

    public var gate: Gate
    public var alpha: Float

    public init(gate: Gate = .swish, alpha: Float = 1) {
        self.gate = gate
        self.alpha = alpha
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 2, let a = inputs[0].tensorType else { return [nil] }
        if let b = inputs[1].tensorType {
            guard a.dtype == b.dtype else {
                throw KilnError.typeMismatch("gatedActivation inputs have types \(a.dtype) and \(b.dtype)")
            }
            if let sa = a.shape?.compactMap(\.value), let sb = b.shape?.compactMap(\.value),
                sa.count == a.shape?.count, sb.count == b.shape?.count, sa != sb
            {
                throw KilnError.shapeMismatch("gatedActivation inputs have shapes \(sa) and \(sb)")
            }
        }
        return [.tensor(a)]
    }

    public var description: String { "gate=\(gate.rawValue) alpha=\(alpha)" }
}

/// Writes `update` into a copy of a fixed-size cache along its sequence axis, at a per-batch start index
/// (ONNX TensorScatter, the KV-cache update). Inputs: `past`, `update`, optional int64 `writeIndices` (batch).
public struct TensorScatterLayer: Layer {
    public static let kind = LayerKind("tensorScatter")

    public var axis: Int
    /// Write positions wrap around the sequence length instead of having to fit.
    public var circular: Bool

    public init(axis: Int = -2, circular: Bool = false) {
        self.axis = axis
        self.circular = circular
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }

    public var description: String { "axis=\(axis)" + (circular ? " mode=circular" : "") }
}
