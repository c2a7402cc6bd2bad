/// Normalizes exponentials along an axis: ONNX Softmax, LogSoftmax and Hardmax.
///
/// Opset 13 normalizes along `axis` alone; older opsets flatten the input to 2-D at `axis` and normalize each
/// row of the flattened tail (`flattenTail`).
public struct SoftmaxLayer: Layer {
    public static let kind = LayerKind("softmax")

    public enum Variant: String, Sendable, Codable { case softmax, logSoftmax, hardmax }

    public var variant: Variant
    public var axis: Int
    public var flattenTail: Bool
    /// Writes 0 where the result is NaN (a row of all -inf, such as a fully masked attention row). The optimizer
    /// sets it in place of the `Where(IsNaN(y), 0, y)` that attention exports put after the softmax.
    public var zeroNaN: Bool

    public init(variant: Variant, axis: Int = -1, flattenTail: Bool = false, zeroNaN: Bool = false) {
        self.variant = variant
        self.axis = axis
        self.flattenTail = flattenTail
        self.zeroNaN = zeroNaN
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        guard input.dtype.isFloatingPoint else {
            throw KilnError.typeMismatch("\(variant.rawValue) needs a floating-point input, got \(input.dtype)")
        }
        if let rank = input.rank, rank > 0 { _ = try reductionAxis(axis, rank: rank) }
        return [.tensor(input)]
    }

    public var description: String {
        "variant=\(variant.rawValue) axis=\(axis)" + (flattenTail ? " flatten=1" : "") + (zeroNaN ? " zero_nan=1" : "")
    }
}

/// Running sums or products along an axis (ONNX CumSum, CumProd). Inputs: `x`, and `axis` (a scalar) when
/// `axis` is nil.
public struct CumulativeLayer: Layer {
    public static let kind = LayerKind("cumulative")

    public enum Op: String, Sendable, Codable { case sum, prod }

    public var op: Op
    public var axis: Int?
    public var exclusive: Bool
    public var reverse: Bool

    public init(op: Op = .sum, axis: Int?, exclusive: Bool = false, reverse: Bool = false) {
        self.op = op
        self.axis = axis
        self.exclusive = exclusive
        self.reverse = reverse
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [inputs.first?.type]
    }

    public var description: String {
        var parts = ["op=\(op.rawValue)"]
        if let axis { parts.append("axis=\(axis)") }
        if exclusive { parts.append("exclusive=1") }
        if reverse { parts.append("reverse=1") }
        return parts.joined(separator: " ")
    }
}

/// The k largest or smallest elements along an axis with their int64 indices (ONNX TopK). Inputs: `x`, and
/// `k` (1-D, one element) when `k` is nil. Ties keep the lower index first.
public struct TopKLayer: Layer {
    public static let kind = LayerKind("topK")

    public var k: Int?
    public var axis: Int
    public var largest: Bool
    public var sorted: Bool

    public init(k: Int?, axis: Int = -1, largest: Bool = true, sorted: Bool = true) {
        self.k = k
        self.axis = axis
        self.largest = largest
        self.sorted = sorted
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil, nil] }
        guard let shape = input.shape else {
            return [.tensor(TensorType(input.dtype, nil)), .tensor(TensorType(.int64, nil))]
        }
        let a = try reductionAxis(axis, rank: shape.count)
        var count = k
        if count == nil, inputs.count > 1, let constant = inputs[1].constant {
            count = try constant.intValues().first
        }
        var out = shape
        out[a] = count.map { .value($0) } ?? .unknown
        return [.tensor(TensorType(input.dtype, out)), .tensor(TensorType(.int64, out))]
    }

    public var description: String {
        (k.map { "k=\($0) " } ?? "") + "axis=\(axis) largest=\(largest ? 1 : 0) sorted=\(sorted ? 1 : 0)"
    }
}
