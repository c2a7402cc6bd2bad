/// Scaled dot-product attention over rank-4 inputs with optional modifier graphs on the scores and on the
/// probabilities (ONNX ai.onnx.preview FlexAttention). Inputs: Q (B, Hq, L, E), K (B, Hkv, S, E),
/// V (B, Hkv, S, Ev); output (B, Hq, L, Ev). Query head h reads K/V head h / (Hq / Hkv).
public struct FlexAttentionLayer: Layer {
    public static let kind = LayerKind("flexAttention")

    /// nil means 1/sqrt(E).
    public var scale: Float?
    /// The element type of the scores, softmax and probabilities; nil means float32, or double for double inputs.
    public var softmaxPrecision: DType?
    /// Maps scores (B, Hq, L, S) to modified scores of the same shape.
    public var scoreModifier: Graph?
    /// Maps probabilities (B, Hq, L, S) to modified probabilities of the same shape.
    public var probabilityModifier: Graph?

    public init(scale: Float? = nil, softmaxPrecision: DType? = nil, scoreModifier: Graph? = nil,
        probabilityModifier: Graph? = nil)
    {
        self.scale = scale
        self.softmaxPrecision = softmaxPrecision
        self.scoreModifier = scoreModifier
        self.probabilityModifier = probabilityModifier
    }

    public var subgraphs: [Graph] { [scoreModifier, probabilityModifier].compactMap { $0 } }

    public func replacingSubgraphs(_ graphs: [Graph]) -> FlexAttentionLayer {
        guard graphs.count == subgraphs.count else { return self }
        var copy = self
        var rest = graphs[...]
        if scoreModifier != nil { copy.scoreModifier = rest.popFirst() }
        if probabilityModifier != nil { copy.probabilityModifier = rest.popFirst() }
        return copy
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 3, let q = inputs[0].tensorType, let qs = q.shape, qs.count == 4,
            let vs = inputs[2].tensorType?.shape, vs.count == 4
        else { return [inputs.first?.tensorType.map { .tensor(TensorType($0.dtype, nil)) }] }
        return [.tensor(TensorType(q.dtype, [qs[0], qs[1], qs[2], vs[3]]))]
    }

    public var description: String {
        var parts: [String] = []
        if let scale { parts.append("scale=\(scale)") }
        if let softmaxPrecision { parts.append("precision=\(softmaxPrecision)") }
        if scoreModifier != nil { parts.append("score_mod") }
        if probabilityModifier != nil { parts.append("prob_mod") }
        return parts.joined(separator: " ")
    }
}
