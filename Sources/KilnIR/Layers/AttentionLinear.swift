/// Linear (recurrent-state) attention (ONNX LinearAttention, opset 27). Inputs: query, key, value
/// ([batch, seq, heads * dim]), optional past_state [batch, kvHeads, dk, dv], decay, beta. Outputs: output
/// [batch, seq, qHeads * dv] and present_state.
public struct LinearAttentionLayer: Layer {
    public static let kind = LayerKind("attention.linear")

    /// How the state is updated at each step: plain accumulation, with a decay gate, with the delta rule, or
    /// both.
    public enum Update: String, Sendable, Hashable, Codable {
        case linear, gated, delta
        case gatedDelta = "gated_delta"

        public var gated: Bool { self == .gated || self == .gatedDelta }
        public var delta: Bool { self == .delta || self == .gatedDelta }
    }

    public var update: Update
    public var qNumHeads: Int
    public var kvNumHeads: Int
    /// nil: 1/sqrt(dk).
    public var scale: Float?

    public init(update: Update, qNumHeads: Int, kvNumHeads: Int, scale: Float? = nil) {
        self.update = update
        self.qNumHeads = qNumHeads
        self.kvNumHeads = kvNumHeads
        self.scale = scale
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count >= 3, let q = inputs[0].tensorType, let qs = q.shape, let ks = inputs[1].tensorType?.shape,
            let vs = inputs[2].tensorType?.shape, qs.count == 3, ks.count == 3, vs.count == 3
        else {
            return [nil, nil]
        }
        let dk = ks[2].value.map { Dim.value($0 / kvNumHeads) } ?? .unknown
        let dv = vs[2].value.map { $0 / kvNumHeads }
        let output = TensorType(q.dtype, [qs[0], qs[1], dv.map { .value($0 * qNumHeads) } ?? .unknown])
        let stateType = inputs.count > 3 ? inputs[3].tensorType?.dtype ?? q.dtype : q.dtype
        let state = TensorType(stateType, [qs[0], .value(kvNumHeads), dk, dv.map { .value($0) } ?? .unknown])
        return [.tensor(output), .tensor(state)]
    }

    public var description: String {
        var parts = ["update=\(update.rawValue)", "qHeads=\(qNumHeads)", "kvHeads=\(kvNumHeads)"]
        if let scale { parts.append("scale=\(scale)") }
        return parts.joined(separator: ", ")
    }
}
