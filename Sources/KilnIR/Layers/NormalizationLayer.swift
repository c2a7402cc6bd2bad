/// Normalizes a tensor by statistics over some of its axes, then applies an affine map: ONNX
/// BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization, RMSNormalization,
/// MeanVarianceNormalization, LpNormalization and LRN.
///
/// Inputs per method (optional ones may be absent):
/// - batch: x, scale, bias, mean, variance (per channel, axis 1). Training mode also outputs the updated
///   running mean and variance.
/// - instance: x, scale, bias (per channel).
/// - layer: x, scale, bias? (broadcast to `shape[axis...]`); outputs y, mean?, inverse std-dev?.
/// - group: x, scale, bias (per channel, or per group when `perGroupAffine`).
/// - rms: x, scale (broadcast to `shape[axis...]`).
/// - meanVariance, lp, lrn: x.
public struct NormalizationLayer: Layer {
    public static let kind = LayerKind("normalization")

    public enum Method: Sendable, Equatable, Codable {
        case batch(training: Bool, momentum: Float)
        case instance
        case layer(axis: Int)
        case group(groups: Int, perGroupAffine: Bool)
        case rms(axis: Int)
        /// (x - mean) / (std + epsilon) over `axes`.
        case meanVariance(axes: [Int])
        /// x / ||x||_p along `axis`.
        case lp(axis: Int, p: Int)
        /// Local response normalization across channels.
        case lrn(size: Int, alpha: Float, beta: Float, bias: Float)
    }

    public var method: Method
    public var epsilon: Float
    /// The element type of layer normalization's mean and inverse std-dev outputs (ONNX `stash_type`).
    public var statisticsType: DType

    public init(method: Method, epsilon: Float = 1e-5, statisticsType: DType = .float32) {
        self.method = method
        self.epsilon = epsilon
        self.statisticsType = statisticsType
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let input = inputs.first?.tensorType else { return [nil] }
        guard input.dtype.isFloatingPoint else {
            throw KilnError.typeMismatch("normalization needs a floating-point input, got \(input.dtype)")
        }
        switch method {
        case .batch(let training, _):
            guard training else { return [.tensor(input)] }
            let channel: Dim = input.shape.flatMap { $0.count > 1 ? $0[1] : nil } ?? .unknown
            let stats = inputs.count > 3 ? inputs[3].tensorType?.dtype ?? input.dtype : input.dtype
            return [.tensor(input), .tensor(TensorType(stats, [channel])), .tensor(TensorType(stats, [channel]))]
        case .layer(let axis):
            guard let shape = input.shape else {
                return [
                    .tensor(input), .tensor(TensorType(statisticsType, nil)), .tensor(TensorType(statisticsType, nil)),
                ]
            }
            let a = try reductionAxis(axis, rank: shape.count)
            let stats = Array(shape[..<a]) + Array(repeating: Dim.value(1), count: shape.count - a)
            return [
                .tensor(input), .tensor(TensorType(statisticsType, stats)), .tensor(TensorType(statisticsType, stats)),
            ]
        case .rms(let axis), .lp(let axis, _):
            if let rank = input.rank { _ = try reductionAxis(axis, rank: rank) }
            return [.tensor(input)]
        default:
            return [.tensor(input)]
        }
    }

    public var description: String {
        let body: String
        switch method {
        case .batch(let training, let momentum):
            body = "method=batch" + (training ? " training=1 momentum=\(momentum)" : "")
        case .instance: body = "method=instance"
        case .layer(let axis): body = "method=layer axis=\(axis)"
        case .group(let groups, let perGroup):
            body = "method=group groups=\(groups)" + (perGroup ? " affine=group" : "")
        case .rms(let axis): body = "method=rms axis=\(axis)"
        case .meanVariance(let axes): body = "method=meanVariance axes=\(axes)"
        case .lp(let axis, let p): return "method=lp axis=\(axis) p=\(p)"
        case .lrn(let size, let alpha, let beta, let bias):
            return "method=lrn size=\(size) alpha=\(alpha) beta=\(beta) bias=\(bias)"
        }
        return body + " epsilon=\(epsilon)"
    }
}
