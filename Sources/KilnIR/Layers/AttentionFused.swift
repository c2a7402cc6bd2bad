/// Multi-head scaled dot-product attention fused by the optimizer from its primitive layers
/// (`softmax(scale · Q·Kᵀ + mask) · V`), with the head reshapes and transposes around it folded into views:
/// each operand is read, and the result written, in place through a `View` of its tensor, so no transposed
/// copy of Q, K, V or the output and no [batch, heads, queries, keys] score tensor exists in memory.
///
/// Inputs: the tensors holding Q, K and V (the same tensor may hold several, e.g. one packed QKV product),
/// and an optional additive mask broadcastable to [batch, heads, queries, keys]. Output: a dense tensor of
/// `outputShape` in which `output` places the [batch, heads, queries, valueHeadSize] result.
/// Views are in elements and fixed when the layer is made, so the layer belongs to one set of input shapes
/// (the optimizer makes it only where shapes are concrete).
public struct FusedAttentionLayer: Layer {
    public static let kind = LayerKind("attention.fused")

    /// Where the elements of a logical [batch, heads, sequence, head] tensor lie in a stored tensor: element
    /// (b, h, s, d) is at `offset + b·strides[0] + h·strides[1] + s·strides[2] + d·strides[3]`. A stride of 0
    /// repeats the axis (a K or V shared by every head).
    public struct View: Sendable, Hashable, CustomStringConvertible, Codable {
        public var offset: Int
        public var strides: [Int]

        public init(offset: Int = 0, strides: [Int]) {
            self.offset = offset
            self.strides = strides
        }

        /// The largest element index the view reaches for a logical `shape`, or nil for an empty shape.
        public func lastIndex(_ shape: [Int]) -> Int? {
            guard shape.allSatisfy({ $0 > 0 }) else { return nil }
            return zip(shape, strides).reduce(offset) { $0 + ($1.0 - 1) * $1.1 }
        }

        public var description: String { "@\(offset)[\(strides.map(String.init).joined(separator: ","))]" }
    }

    public var batch: Int
    public var heads: Int
    public var queryLength: Int
    public var keyLength: Int
    public var headSize: Int
    public var valueHeadSize: Int
    public var query: View
    public var key: View
    public var value: View
    public var output: View
    public var outputShape: [Int]
    public var scale: Float
    /// A query row whose keys are all masked (-inf) gives zeros instead of NaN (the NaN guard folded in).
    public var zeroMaskedRows: Bool

    public init(
        batch: Int, heads: Int, queryLength: Int, keyLength: Int, headSize: Int, valueHeadSize: Int,
        query: View, key: View, value: View, output: View, outputShape: [Int], scale: Float,
        zeroMaskedRows: Bool = false
    ) {
        self.batch = batch
        self.heads = heads
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.headSize = headSize
        self.valueHeadSize = valueHeadSize
        self.query = query
        self.key = key
        self.value = value
        self.output = output
        self.outputShape = outputShape
        self.scale = scale
        self.zeroMaskedRows = zeroMaskedRows
    }

    public var queryShape: [Int] { [batch, heads, queryLength, headSize] }
    public var keyShape: [Int] { [batch, heads, keyLength, headSize] }
    public var valueShape: [Int] { [batch, heads, keyLength, valueHeadSize] }
    public var resultShape: [Int] { [batch, heads, queryLength, valueHeadSize] }
    public var scoreShape: [Int] { [batch, heads, queryLength, keyLength] }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 3 || inputs.count == 4 else {
            throw KilnError.invalidArgument("fused attention takes Q, K, V and an optional mask, got \(inputs.count)")
        }
        guard let q = inputs[0].tensorType else { return [nil] }
        try checkViews(inputCounts: inputs.prefix(3).map { $0.tensorType?.concreteShape?.reduce(1, *) })
        if inputs.count == 4, let mask = inputs[3].tensorType?.concreteShape {
            guard try Broadcast.shape(mask, scoreShape) == scoreShape else {
                throw KilnError.shapeMismatch("fused attention mask \(mask) does not broadcast to \(scoreShape)")
            }
        }
        return [.tensor(TensorType(q.dtype, dims: outputShape))]
    }

    /// Throws unless every view has 4 strides and stays inside its tensor: Q, K and V inside inputs of
    /// `inputCounts` elements (nil: not known yet), the result inside `outputShape`.
    public func checkViews(inputCounts: [Int?]) throws {
        let views = [
            (query, queryShape, "Q"), (key, keyShape, "K"), (value, valueShape, "V"), (output, resultShape, "output"),
        ]
        let counts = inputCounts + [outputShape.reduce(1, *)]
        for ((view, shape, name), count) in zip(views, counts) {
            guard view.strides.count == 4 else {
                throw KilnError.invalidArgument("fused attention \(name) view needs 4 strides")
            }
            if let count, let last = view.lastIndex(shape), view.offset < 0 || last >= count {
                throw KilnError.shapeMismatch(
                    "fused attention \(name) view \(view) of \(shape) exceeds \(count) elements")
            }
        }
    }

    public var description: String {
        var parts = [
            "heads=\(heads)", "q=\(queryLength)", "k=\(keyLength)", "d=\(headSize)",
        ]
        if valueHeadSize != headSize { parts.append("dv=\(valueHeadSize)") }
        parts.append("scale=\(scale)")
        if zeroMaskedRows { parts.append("zero_masked_rows") }
        parts += ["Q\(query)", "K\(key)", "V\(value)", "O\(output)"]
        return parts.joined(separator: ",")
    }
}
