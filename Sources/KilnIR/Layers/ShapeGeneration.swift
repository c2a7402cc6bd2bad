/// The input's shape as a 1-D int64 tensor, dims `start..<end` (ONNX Shape).
public struct ShapeOfLayer: Layer {
    public static let kind = LayerKind("shapeOf")
    public var start: Int
    public var end: Int?
    public init(start: Int = 0, end: Int? = nil) {
        self.start = start
        self.end = end
    }
    public var description: String { "start=\(start)\(end.map { ",end=\($0)" } ?? "")" }

    /// The clamped range of dims for `rank`.
    public func range(rank: Int) -> Range<Int> {
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
        let s = clamp(start)
        let e = clamp(end ?? rank)
        return s..<max(s, e)
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let rank = inputs.first?.tensorType?.rank else { return [.tensor(TensorType(.int64, [.unknown]))] }
        return [.tensor(TensorType(.int64, [.value(range(rank: rank).count)]))]
    }
}

/// The input's element count as an int64 scalar (ONNX Size).
public struct SizeLayer: Layer {
    public static let kind = LayerKind("size")
    public init() {}
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [.tensor(TensorType(.int64, []))] }
}

/// A tensor of the shape given by input 0, filled with `value` (ONNX ConstantOfShape).
public struct ConstantOfShapeLayer: Layer {
    public static let kind = LayerKind("constantOfShape")
    /// A one-element tensor giving dtype and value.
    public var value: Tensor
    public init(value: Tensor) { self.value = value }
    public var description: String { "dtype=\(value.dtype)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        if let s = ShapeAxes.constantInts(inputs, 0) { return [.tensor(TensorType(value.dtype, dims: s))] }
        let n = inputs.first?.tensorType?.concreteShape?.first
        return [.tensor(TensorType(value.dtype, n.map { Array(repeating: .unknown, count: $0) }))]
    }
}

/// start, start + delta, ... below limit (ONNX Range; inputs are scalars).
public struct RangeLayer: Layer {
    public static let kind = LayerKind("range")
    public init() {}
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        return [.tensor(TensorType(dtype, [.unknown]))]
    }
}

/// A 2-D tensor with ones on diagonal `k` (ONNX EyeLike); dtype nil keeps the input's.
public struct EyeLikeLayer: Layer {
    public static let kind = LayerKind("eyeLike")
    public var dtype: DType?
    public var k: Int
    public init(dtype: DType?, k: Int) {
        self.dtype = dtype
        self.k = k
    }
    public var description: String { "k=\(k)\(dtype.map { ",dtype=\($0)" } ?? "")" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let t = inputs.first?.tensorType else { return [nil] }
        return [.tensor(TensorType(dtype ?? t.dtype, t.shape))]
    }
}

/// Keeps the upper or lower triangle of the last two axes, offset by input 1 (ONNX Trilu).
public struct TriluLayer: Layer {
    public static let kind = LayerKind("trilu")
    public var upper: Bool
    public init(upper: Bool) { self.upper = upper }
    public var description: String { upper ? "upper" : "lower" }
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
}

/// Dropout at inference: the input unchanged and an all-true mask (ONNX Dropout). Inputs 1 (ratio) and 2
/// (training_mode) are read at run time; training with a non-zero ratio is random and not supported.
public struct DropoutLayer: Layer {
    public static let kind = LayerKind("dropout")
    public init() {}
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let t = inputs.first?.tensorType else { return [nil, nil] }
        return [.tensor(t), .tensor(TensorType(.bool, t.shape))]
    }
}

/// Moves blocks between the channel axis and the spatial axes (ONNX DepthToSpace / SpaceToDepth).
public struct DepthSpaceLayer: Layer {
    public static let kind = LayerKind("depthSpace")
    public enum Direction: String, Sendable, Codable { case depthToSpace, spaceToDepth }
    /// DCR: depth-column-row ordering of the channel; CRD: column-row-depth.
    public enum Mode: String, Sendable, Codable {
        case dcr = "DCR"
        case crd = "CRD"
    }
    public var direction: Direction
    public var blockSize: Int
    public var mode: Mode
    public init(_ direction: Direction, blockSize: Int, mode: Mode) {
        self.direction = direction
        self.blockSize = blockSize
        self.mode = mode
    }
    public var description: String { "\(direction.rawValue),block=\(blockSize),mode=\(mode.rawValue)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let d = ShapeAxes.dims(inputs, 0), d.count == 4 else { return [.tensor(TensorType(dtype, nil))] }
        let b = blockSize
        func scale(_ x: Dim, _ f: (Int) -> Int) -> Dim { x.value.map { .value(f($0)) } ?? .unknown }
        switch direction {
        case .depthToSpace:
            return [
                .tensor(
                    TensorType(
                        dtype,
                        [
                            d[0], scale(d[1]) { $0 / (b * b) }, scale(d[2]) { $0 * b },
                            scale(d[3]) { $0 * b },
                        ]))
            ]
        case .spaceToDepth:
            return [
                .tensor(
                    TensorType(
                        dtype,
                        [
                            d[0], scale(d[1]) { $0 * b * b }, scale(d[2]) { $0 / b },
                            scale(d[3]) { $0 / b },
                        ]))
            ]
        }
    }
}
