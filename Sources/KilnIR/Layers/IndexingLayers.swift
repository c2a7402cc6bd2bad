/// How a scatter combines an update with the value already there.
public enum ScatterReduction: String, Sendable, Hashable, Codable {
    case none, add, mul, max, min
}

/// Takes slices along `axis` at the given indices (ONNX Gather): out = data[..., indices, ...].
public struct GatherLayer: Layer {
    public static let kind = LayerKind("gather")
    public var axis: Int
    public init(axis: Int) { self.axis = axis }
    public var description: String { "axis=\(axis)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let d = ShapeAxes.dims(inputs, 0), let i = ShapeAxes.dims(inputs, 1) else {
            return [.tensor(TensorType(dtype, nil))]
        }
        let a = try ShapeAxes.normalize(axis, rank: d.count)
        return [.tensor(TensorType(dtype, Array(d[..<a]) + i + Array(d[(a + 1)...])))]
    }
}

/// out[i][j][k] = data[index[i][j][k]][j][k] along `axis` (ONNX GatherElements).
public struct GatherElementsLayer: Layer {
    public static let kind = LayerKind("gatherElements")
    public var axis: Int
    public init(axis: Int) { self.axis = axis }
    public var description: String { "axis=\(axis)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        return [.tensor(TensorType(dtype, ShapeAxes.dims(inputs, 1)))]
    }
}

/// Gathers slices addressed by the last axis of the indices (ONNX GatherND).
public struct GatherNDLayer: Layer {
    public static let kind = LayerKind("gatherND")
    public var batchDims: Int
    public init(batchDims: Int) { self.batchDims = batchDims }
    public var description: String { "batch_dims=\(batchDims)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let d = ShapeAxes.dims(inputs, 0), let i = ShapeAxes.dims(inputs, 1), let last = i.last?.value else {
            return [.tensor(TensorType(dtype, nil))]
        }
        guard batchDims + last <= d.count, batchDims < i.count else {
            throw KilnError.shapeMismatch("gatherND index depth \(last) too deep for rank \(d.count)")
        }
        return [.tensor(TensorType(dtype, Array(i.dropLast()) + Array(d[(batchDims + last)...])))]
    }
}

/// Writes updates into a copy of data at positions given per element along `axis` (ONNX ScatterElements and
/// the old Scatter).
public struct ScatterElementsLayer: Layer {
    public static let kind = LayerKind("scatterElements")
    public var axis: Int
    public var reduction: ScatterReduction
    public init(axis: Int, reduction: ScatterReduction) {
        self.axis = axis
        self.reduction = reduction
    }
    public var description: String { "axis=\(axis),reduction=\(reduction.rawValue)" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
}

/// Writes update slices at positions given by index tuples (ONNX ScatterND).
public struct ScatterNDLayer: Layer {
    public static let kind = LayerKind("scatterND")
    public var reduction: ScatterReduction
    public init(reduction: ScatterReduction) { self.reduction = reduction }
    public var description: String { "reduction=\(reduction.rawValue)" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
}

/// One-hot encoding (ONNX OneHot): inputs indices, depth, values [off, on]; the new axis goes at `axis`.
public struct OneHotLayer: Layer {
    public static let kind = LayerKind("oneHot")
    public var axis: Int
    public init(axis: Int) { self.axis = axis }
    public var description: String { "axis=\(axis)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 2) else { return [nil] }
        guard let d = ShapeAxes.dims(inputs, 0) else { return [.tensor(TensorType(dtype, nil))] }
        let a = try ShapeAxes.normalize(axis, rank: d.count + 1)
        var depth = Dim.unknown
        if let c = inputs.count > 1 ? inputs[1].constant : nil, let v = try? c.scalarDouble() { depth = .value(Int(v)) }
        var out = d
        out.insert(depth, at: a)
        return [.tensor(TensorType(dtype, out))]
    }
}

/// Indices of the non-zero elements, one row per axis (ONNX NonZero). Data-dependent shape.
public struct NonZeroLayer: Layer {
    public static let kind = LayerKind("nonZero")
    public init() {}
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [.tensor(TensorType(.int64, [inputs.first?.tensorType?.rank.map { .value($0) } ?? .unknown, .unknown]))]
    }
}

/// Keeps the slices along `axis` (or the flattened elements when nil) where the condition is true
/// (ONNX Compress). Data-dependent shape.
public struct CompressLayer: Layer {
    public static let kind = LayerKind("compress")
    public var axis: Int?
    public init(axis: Int?) { self.axis = axis }
    public var description: String { axis.map { "axis=\($0)" } ?? "flat" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let axis, var d = ShapeAxes.dims(inputs, 0) else { return [.tensor(TensorType(dtype, [.unknown]))] }
        d[try ShapeAxes.normalize(axis, rank: d.count)] = .unknown
        return [.tensor(TensorType(dtype, d))]
    }
}

/// Reverses the first `lengths[b]` steps of each batch entry (ONNX ReverseSequence).
public struct ReverseSequenceLayer: Layer {
    public static let kind = LayerKind("reverseSequence")
    public var batchAxis: Int
    public var timeAxis: Int
    public init(batchAxis: Int, timeAxis: Int) {
        self.batchAxis = batchAxis
        self.timeAxis = timeAxis
    }
    public var description: String { "batch_axis=\(batchAxis),time_axis=\(timeAxis)" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
}

/// Unique elements or slices (ONNX Unique): outputs Y, indices, inverse_indices, counts.
public struct UniqueLayer: Layer {
    public static let kind = LayerKind("unique")
    public var sorted: Bool
    public var axis: Int?
    public init(sorted: Bool, axis: Int?) {
        self.sorted = sorted
        self.axis = axis
    }
    public var description: String { "sorted=\(sorted)\(axis.map { ",axis=\($0)" } ?? "")" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let index = ValueType.tensor(TensorType(.int64, [.unknown]))
        guard let t = inputs.first?.tensorType else { return [nil, index, index, index] }
        var y = TensorType(t.dtype, [.unknown])
        if let axis, var d = t.shape {
            d[try ShapeAxes.normalize(axis, rank: d.count)] = .unknown
            y.shape = d
        }
        return [.tensor(y), index, index, index]
    }
}
