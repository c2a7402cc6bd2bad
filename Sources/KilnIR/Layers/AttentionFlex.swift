/// Attention whose scores and probabilities may be rewritten by user graphs (ONNX ai.onnx.preview
/// FlexAttention). Inputs: Q, K, V, all [batch, heads, seq, dim] (K/V heads divide Q heads). `scoreMod` maps
/// the [batch, heads, L, S] scores before the softmax, `probMod` the probabilities after it.
public struct FlexAttentionLayer: Layer {
    public static let kind = LayerKind("attention.flex")
    /// nil: 1/sqrt(head size).
    public var scale: Float?
    public var scoreMod: Graph?
    public var probMod: Graph?
    /// The type the softmax and the mod graphs work in; nil: float32 for 16-bit inputs, else the input's.
    public var softmaxPrecision: DType?

    public init(scale: Float? = nil, scoreMod: Graph? = nil, probMod: Graph? = nil, softmaxPrecision: DType? = nil) {
        self.scale = scale
        self.scoreMod = scoreMod
        self.probMod = probMod
        self.softmaxPrecision = softmaxPrecision
    }

    public var subgraphs: [Graph] { [scoreMod, probMod].compactMap { $0 } }

    public func replacingSubgraphs(_ graphs: [Graph]) -> FlexAttentionLayer {
        guard graphs.count == subgraphs.count else { return self }
        var copy = self
        var rest = graphs[...]
        if scoreMod != nil { copy.scoreMod = rest.popFirst() }
        if probMod != nil { copy.probMod = rest.popFirst() }
        return copy
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count >= 3, let q = inputs[0].tensorType?.shape, let v = inputs[2].tensorType else { return [nil] }
        guard q.count == 4, let vs = v.shape, vs.count == 4 else {
            throw KilnError.shapeMismatch("FlexAttention needs rank-4 Q, K and V")
        }
        return [.tensor(TensorType(v.dtype, [q[0], q[1], q[2], vs[3]]))]
    }

    public var description: String {
        var parts: [String] = []
        if let scale { parts.append("scale=\(scale)") }
        if scoreMod != nil { parts.append("scoreMod") }
        if probMod != nil { parts.append("probMod") }
        if let softmaxPrecision { parts.append("softmaxPrecision=\(softmaxPrecision)") }
        return parts.joined(separator: ", ")
    }
}
