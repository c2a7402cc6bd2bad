/// Normalizes a possibly negative axis against `rank`, throwing when it is out of range.
public func reductionAxis(_ axis: Int, rank: Int, what: String = "axis") throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0, a < rank else {
        throw KilnError.invalidArgument("\(what) \(axis) is out of range for rank \(rank)")
    }
    return a
}

/// Reduces a tensor over a set of axes: ONNX ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
/// ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp and ReduceSumSquare.
///
/// Inputs: `data`, and optionally `axes` (1-D int64) when the axes are not known when the layer is made.
public struct ReduceLayer: Layer {
    public static let kind = LayerKind("reduce")

    public enum Op: String, Sendable, CaseIterable, Codable {
        case sum, mean, max, min, prod, l1, l2, logSum, logSumExp, sumSquare
    }

    public var op: Op
    /// The axes to reduce; nil means "the `axes` input, or every axis when that is absent".
    public var axes: [Int]?
    public var keepDims: Bool
    /// When the axes are empty: true leaves the input unchanged, false reduces every axis.
    public var noopWithEmptyAxes: Bool

    public init(op: Op, axes: [Int]?, keepDims: Bool = true, noopWithEmptyAxes: Bool = false) {
        self.op = op
        self.axes = axes
        self.keepDims = keepDims
        self.noopWithEmptyAxes = noopWithEmptyAxes
    }

    /// The axes reduced for an input of `rank`, sorted and unique; `given` are the axes from the parameter or
    /// the input (nil when neither is given). Empty means "no reduction" (the no-op case).
    public func reducedAxes(rank: Int, given: [Int]?) throws -> [Int] {
        let list = given ?? []
        if list.isEmpty { return noopWithEmptyAxes ? [] : Array(0..<rank) }
        var seen = Set<Int>()
        for a in list {
            let n = a < 0 ? a + rank : a
            guard n >= 0, n < rank else {
                throw KilnError.invalidArgument("reduce axis \(a) is out of range for rank \(rank)")
            }
            seen.insert(n)
        }
        return seen.sorted()
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        guard let shape = input.shape else { return [.tensor(TensorType(input.dtype, nil))] }
        var given = axes
        if given == nil, inputs.count > 1, inputs[1].isPresent {
            guard let constant = inputs[1].constant else { return [.tensor(TensorType(input.dtype, nil))] }
            given = try constant.intValues()
        }
        let reduced = Set(try reducedAxes(rank: shape.count, given: given))
        var out: [Dim] = []
        for (i, d) in shape.enumerated() {
            if reduced.contains(i) {
                if keepDims { out.append(1) }
            } else {
                out.append(d)
            }
        }
        return [.tensor(TensorType(input.dtype, out))]
    }

    public var description: String {
        var parts = ["op=\(op.rawValue)"]
        if let axes { parts.append("axes=\(axes)") }
        parts.append("keepdims=\(keepDims ? 1 : 0)")
        if noopWithEmptyAxes { parts.append("noop_with_empty_axes=1") }
        return parts.joined(separator: " ")
    }
}

/// The index of the largest or smallest element along one axis (ONNX ArgMax, ArgMin); int64 output.
public struct ArgReduceLayer: Layer {
    public static let kind = LayerKind("argReduce")

    public enum Op: String, Sendable, Codable { case max, min }

    public var op: Op
    public var axis: Int
    public var keepDims: Bool
    /// On ties, the last index instead of the first.
    public var selectLastIndex: Bool

    public init(op: Op, axis: Int, keepDims: Bool = true, selectLastIndex: Bool = false) {
        self.op = op
        self.axis = axis
        self.keepDims = keepDims
        self.selectLastIndex = selectLastIndex
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        guard let shape = input.shape else { return [.tensor(TensorType(.int64, nil))] }
        let a = try reductionAxis(axis, rank: shape.count)
        var out = shape
        if keepDims { out[a] = 1 } else { out.remove(at: a) }
        return [.tensor(TensorType(.int64, out))]
    }

    public var description: String {
        "op=\(op.rawValue) axis=\(axis) keepdims=\(keepDims ? 1 : 0)" + (selectLastIndex ? " select_last_index=1" : "")
    }
}
