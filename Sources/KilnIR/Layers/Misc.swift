/// Greedy non-maximum suppression per batch and class (ONNX NonMaxSuppression). Inputs: boxes [B, N, 4],
/// scores [B, C, N], optional max boxes per class (int64), IoU threshold and score threshold (scalars).
/// Output: int64 [K, 3] rows of (batch, class, box), a data-dependent count.
public struct NonMaxSuppressionLayer: Layer {
    public static let kind = LayerKind("misc.nonMaxSuppression")
    /// true: boxes are (x_center, y_center, width, height); false: two corners (y1, x1, y2, x2).
    public var centerPointBox: Bool

    public init(centerPointBox: Bool) { self.centerPointBox = centerPointBox }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        if let boxes = inputs.first?.tensorType?.shape, boxes.count != 3 {
            throw KilnError.shapeMismatch("NonMaxSuppression boxes must be [batch, boxes, 4]")
        }
        return [.tensor(TensorType(.int64, [.unknown, 3]))]
    }

    public var description: String { "centerPointBox=\(centerPointBox)" }
}

/// x * sigmoid(alpha * x) (ONNX Swish; SiLU when alpha is 1).
public struct SwishLayer: Layer {
    public static let kind = LayerKind("misc.swish")
    public var alpha: Float

    public init(alpha: Float) { self.alpha = alpha }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        if let t = inputs.first?.tensorType, !t.dtype.isFloatingPoint {
            throw KilnError.typeMismatch("Swish needs a floating-point input, got \(t.dtype.onnxName)")
        }
        return [inputs.first?.type]
    }

    public var description: String { "alpha=\(alpha)" }
}

/// How a per-element loss is reduced to the output.
public enum LossReduction: String, Sendable, Codable { case none, sum, mean }

/// Negative log-likelihood loss, optionally after a log-softmax over the class axis (ONNX
/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss). Inputs: scores [N, C, d...], int labels [N, d...],
/// optional class weights [C]. Outputs: the loss, and for the softmax form optionally the log-probabilities.
public struct ClassificationLossLayer: Layer {
    public static let kind = LayerKind("misc.classificationLoss")
    /// true for SoftmaxCrossEntropyLoss (log-softmax first), false for NegativeLogLikelihoodLoss.
    public var softmax: Bool
    public var reduction: LossReduction
    /// Labels equal to this contribute nothing (and are not range-checked).
    public var ignoreIndex: Int64?

    public init(softmax: Bool, reduction: LossReduction, ignoreIndex: Int64?) {
        self.softmax = softmax
        self.reduction = reduction
        self.ignoreIndex = ignoreIndex
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil, nil] }
        guard x.dtype.isFloatingPoint else { throw KilnError.typeMismatch("loss scores must be floating-point") }
        var loss: [Dim]? = []
        if reduction == .none {
            if let labels = inputs.count > 1 ? inputs[1].tensorType?.shape : nil {
                loss = labels
            } else if let s = x.shape, s.count >= 2 {
                loss = [s[0]] + s.dropFirst(2)
            } else {
                loss = nil
            }
        }
        return [.tensor(TensorType(x.dtype, loss)), .tensor(x)]
    }

    public var description: String {
        "softmax=\(softmax) reduction=\(reduction.rawValue) ignoreIndex=\(ignoreIndex.map(String.init) ?? "none")"
    }
}

/// One step of a training optimizer over n tensors (ai.onnx.preview.training Adagrad, Adam, Momentum).
/// Inputs: learning rate R, step count T, then n parameters X, n gradients G, and the n (Adagrad, Momentum)
/// or 2n (Adam: V then H) state tensors. Outputs: the n new X, then the new states in the same order.
public struct OptimizerStepLayer: Layer {
    public enum Algorithm: Sendable, Equatable, Codable {
        case adagrad(decayFactor: Float, epsilon: Float, normCoefficient: Float)
        case adam(alpha: Float, beta: Float, epsilon: Float, normCoefficient: Float, normCoefficientPost: Float)
        case momentum(alpha: Float, beta: Float, normCoefficient: Float, nesterov: Bool)

        /// State tensors per parameter.
        public var statesPerParameter: Int {
            if case .adam = self { return 2 }
            return 1
        }
    }

    public static let kind = LayerKind("misc.optimizerStep")
    public var algorithm: Algorithm

    public init(algorithm: Algorithm) { self.algorithm = algorithm }

    /// Parameters updated, given the input count.
    public func parameterCount(inputs: Int) -> Int { (inputs - 2) / (2 + algorithm.statesPerParameter) }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let perParameter = 2 + algorithm.statesPerParameter
        guard inputs.count >= 2 + perParameter, (inputs.count - 2) % perParameter == 0 else {
            throw KilnError.invalidModel("optimizer step has \(inputs.count) inputs; expected 2 + \(perParameter)·n")
        }
        let n = parameterCount(inputs: inputs.count)
        // New X take X's types; new states take the states' types.
        var types: [ValueType?] = (0..<n).map { inputs[2 + $0].type }
        for s in 0..<(n * algorithm.statesPerParameter) { types.append(inputs[2 + 2 * n + s].type) }
        return types
    }

    public var description: String { "\(algorithm)" }
}

/// Decodes one encoded image (a 1-D uint8 tensor) into uint8 [H, W, C] (ONNX ImageDecoder). Kiln reads
/// PNG, BMP, PNM (P5/P6) and uncompressed TIFF itself; JPEG, JPEG 2000 and WebP are reported unsupported.
public struct ImageDecoderLayer: Layer {
    public enum PixelFormat: String, Sendable, Codable {
        case rgb = "RGB"
        case bgr = "BGR"
        case grayscale = "Grayscale"
    }
    public static let kind = LayerKind("misc.imageDecoder")
    public var pixelFormat: PixelFormat

    public init(pixelFormat: PixelFormat) { self.pixelFormat = pixelFormat }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [.tensor(TensorType(.uint8, [.unknown, .unknown, .value(pixelFormat == .grayscale ? 1 : 3)]))]
    }

    public var description: String { "pixelFormat=\(pixelFormat.rawValue)" }
}
