/// Resamples the input (ONNX Resize, Upsample). Inputs are normalised to [X, roi, scales, sizes]; `scales` or
/// `sizes` known at import are folded into the parameters.
public struct ResizeLayer: Layer {
    public static let kind = LayerKind("resize")

    public enum Mode: String, Sendable, Codable { case nearest, linear, cubic }
    public enum CoordinateMode: String, Sendable, Codable {
        case halfPixel = "half_pixel"
        case halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel"
        case alignCorners = "align_corners"
        case asymmetric
        case tfCropAndResize = "tf_crop_and_resize"
        case tfHalfPixelForNN = "tf_half_pixel_for_nn"
    }
    public enum NearestMode: String, Sendable, Codable {
        case roundPreferFloor = "round_prefer_floor"
        case roundPreferCeil = "round_prefer_ceil"
        case floor, ceil
    }
    public enum AspectPolicy: String, Sendable, Codable {
        case stretch
        case notLarger = "not_larger"
        case notSmaller = "not_smaller"
    }

    public struct Parameters: Sendable, Codable {
        public var mode: Mode = .nearest
        public var coordinateMode: CoordinateMode = .halfPixel
        public var nearestMode: NearestMode = .roundPreferFloor
        public var cubicA: Double = -0.75
        public var excludeOutside = false
        public var extrapolationValue: Double = 0
        public var antialias = false
        public var aspectPolicy: AspectPolicy = .stretch
        public var axes: [Int]? = nil
        public init() {}
    }

    public var parameters: Parameters
    public var scales: [Double]?
    public var sizes: [Int]?
    public init(_ parameters: Parameters, scales: [Double]?, sizes: [Int]?) {
        self.parameters = parameters
        self.scales = scales
        self.sizes = sizes
    }

    public var description: String {
        let p = parameters
        var s = "mode=\(p.mode.rawValue),coord=\(p.coordinateMode.rawValue)"
        if p.mode == .nearest { s += ",nearest=\(p.nearestMode.rawValue)" }
        if p.mode == .cubic { s += ",a=\(p.cubicA)\(p.excludeOutside ? ",exclude_outside" : "")" }
        if p.antialias { s += ",antialias" }
        if let scales { s += ",scales=[\(scales.map { "\($0)" }.joined(separator: ","))]" }
        if let sizes { s += ",sizes=\(ShapeAxes.list(sizes))" }
        return s
    }

    /// Output shape and the per-axis scale used for coordinate mapping, for a concrete input shape.
    public func plan(
        shape: [Int], scales runtimeScales: [Double]?, sizes runtimeSizes: [Int]?
    ) throws
        -> (shape: [Int], scales: [Double])
    {
        let rank = shape.count
        let axes = try ShapeAxes.normalize(parameters.axes ?? Array(0..<rank), rank: rank)
        var outScales = Array(repeating: 1.0, count: rank)
        var out = shape
        if let sizes = runtimeSizes ?? sizes, !sizes.isEmpty {
            guard sizes.count == axes.count else {
                throw KilnError.invalidArgument("resize sizes \(sizes) for axes \(axes)")
            }
            guard sizes.allSatisfy({ $0 >= 0 }), axes.allSatisfy({ shape[$0] > 0 }) else {
                throw KilnError.invalidArgument("resize of \(shape) to sizes \(sizes)")
            }
            switch parameters.aspectPolicy {
            case .stretch:
                for (a, s) in zip(axes, sizes) {
                    out[a] = s
                    outScales[a] = Double(s) / Double(shape[a])
                }
            case .notLarger, .notSmaller:
                let ratios = zip(axes, sizes).map { Double($1) / Double(shape[$0]) }
                let r = parameters.aspectPolicy == .notLarger ? (ratios.min() ?? 1) : (ratios.max() ?? 1)
                guard r < 1e9 else { throw KilnError.invalidArgument("resize ratio \(r) is too large") }
                for a in axes {
                    out[a] = Int(Double(shape[a]) * r + 0.5)
                    outScales[a] = r
                }
            }
        } else if let scales = runtimeScales ?? scales, !scales.isEmpty {
            guard scales.count == axes.count else {
                throw KilnError.invalidArgument("resize scales \(scales) for axes \(axes)")
            }
            for (a, s) in zip(axes, scales) {
                guard s > 0, s < 1e9 else { throw KilnError.invalidArgument("resize scale \(s) is out of range") }
                out[a] = Int((Double(shape[a]) * s).rounded(.down))
                outScales[a] = s
            }
        } else {
            throw KilnError.invalidArgument("resize needs scales or sizes")
        }
        _ = try ShapeAxes.checkedCount(out)
        return (out, outScales)
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let t = inputs.first?.tensorType else { return [nil] }
        guard let shape = t.concreteShape else {
            return [.tensor(TensorType(t.dtype, t.shape.map { $0.map { _ in .unknown } }))]
        }
        var rs: [Double]? = nil
        var rz: [Int]? = nil
        if inputs.count > 2, let c = inputs[2].constant { rs = try? c.doubleValues() }
        if inputs.count > 3, let c = inputs[3].constant { rz = try? c.intValues() }
        guard let p = try? plan(shape: shape, scales: rs, sizes: rz) else {
            return [.tensor(TensorType(t.dtype, shape.map { _ in .unknown }))]
        }
        return [.tensor(TensorType(t.dtype, dims: p.shape))]
    }
}

/// Samples input 0 at the normalised coordinates of grid input 1 (ONNX GridSample), 4-D or 5-D.
public struct GridSampleLayer: Layer {
    public static let kind = LayerKind("gridSample")
    public enum Mode: String, Sendable, Codable { case linear, nearest, cubic }
    public enum Padding: String, Sendable, Codable { case zeros, border, reflection }
    public var mode: Mode
    public var padding: Padding
    public var alignCorners: Bool
    public init(mode: Mode, padding: Padding, alignCorners: Bool) {
        self.mode = mode
        self.padding = padding
        self.alignCorners = alignCorners
    }
    public var description: String { "mode=\(mode.rawValue),padding=\(padding.rawValue),align_corners=\(alignCorners)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let x = ShapeAxes.dims(inputs, 0), let g = ShapeAxes.dims(inputs, 1), g.count == x.count else {
            return [.tensor(TensorType(dtype, nil))]
        }
        return [.tensor(TensorType(dtype, [x[0], x[1]] + Array(g[1..<(g.count - 1)])))]
    }
}

/// Sampling grids from affine matrices theta (ONNX AffineGrid); input 1 is the output size (N, C, H, W[, D]).
public struct AffineGridLayer: Layer {
    public static let kind = LayerKind("affineGrid")
    public var alignCorners: Bool
    public init(alignCorners: Bool) { self.alignCorners = alignCorners }
    public var description: String { "align_corners=\(alignCorners)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let size = ShapeAxes.constantInts(inputs, 1), size.count >= 4 else {
            return [.tensor(TensorType(dtype, nil))]
        }
        return [.tensor(TensorType(dtype, dims: [size[0]] + Array(size[2...]) + [size.count - 2]))]
    }
}
