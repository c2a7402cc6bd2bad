/// (x - offset) * scale per feature of the last axis, one value broadcast to all (ai.onnx.ml Scaler).
public struct MLScalerLayer: Layer {
    public static let kind = LayerKind("ml.scaler")
    public var offset: [Float]
    public var scale: [Float]

    public init(offset: [Float], scale: [Float]) {
        self.offset = offset
        self.scale = scale
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [.tensor(TensorType(.float32, inputs.first?.tensorType?.shape))]
    }

    public var description: String { "features=\(max(offset.count, scale.count))" }
}

/// Normalises each row by its max, L1 or L2 norm (ai.onnx.ml Normalizer).
public struct MLNormalizerLayer: Layer {
    public enum Norm: String, Sendable, Codable {
        case max = "MAX"
        case l1 = "L1"
        case l2 = "L2"
    }
    public static let kind = LayerKind("ml.normalizer")
    public var norm: Norm

    public init(norm: Norm) { self.norm = norm }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [.tensor(TensorType(.float32, inputs.first?.tensorType?.shape))]
    }

    public var description: String { "norm=\(norm.rawValue)" }
}

/// Replaces a marker value (NaN by default) per feature with an imputed value (ai.onnx.ml Imputer).
public struct MLImputerLayer: Layer {
    public static let kind = LayerKind("ml.imputer")
    /// One value per feature, or one for all.
    public var values: [Double]
    public var replaced: Double

    public init(values: [Double], replaced: Double) {
        self.values = values
        self.replaced = replaced
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
    public var description: String { "values=\(values.count) replaced=\(replaced)" }
}

/// Linear models over [N, F] rows: scores = x · Wᵀ + b for `classes` rows of W (ai.onnx.ml LinearRegressor,
/// LinearClassifier). Classifiers also output the label of the best score.
public struct LinearModelLayer: Layer {
    public static let kind = LayerKind("ml.linear")
    /// Row-major [classes, features].
    public var coefficients: [Float]
    public var intercepts: [Float]
    /// Regressor targets; classifiers derive their class rows from the coefficient count at run time.
    public var classes: Int
    public var postTransform: TreeEnsembleLayer.PostTransform
    public var classLabels: TreeEnsembleLayer.ClassLabels?

    public init(
        coefficients: [Float], intercepts: [Float], classes: Int, postTransform: TreeEnsembleLayer.PostTransform,
        classLabels: TreeEnsembleLayer.ClassLabels?
    ) {
        self.coefficients = coefficients
        self.intercepts = intercepts
        self.classes = classes
        self.postTransform = postTransform
        self.classLabels = classLabels
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let rows: Dim = inputs.first?.tensorType?.shape.flatMap { $0.count == 2 ? $0[0] : .value(1) } ?? .unknown
        guard let classLabels else { return [.tensor(TensorType(.float32, [rows, .value(classes)]))] }
        let scores = ValueType.tensor(TensorType(.float32, [rows, .unknown]))
        let labelType: DType = if case .strings = classLabels { .string } else { .int64 }
        return [.tensor(TensorType(labelType, [rows])), scores]
    }

    public var description: String {
        "classes=\(classes) post=\(postTransform)" + (classLabels == nil ? "" : " classifier")
    }
}

/// One-hot encodes int64 or string categories into float [..., categories] (ai.onnx.ml OneHotEncoder).
public struct MLOneHotEncoderLayer: Layer {
    public static let kind = LayerKind("ml.oneHotEncoder")
    /// int64 or string categories, 1-D.
    public var categories: Tensor
    /// false: an input outside the categories is an error rather than an all-zero row.
    public var zeros: Bool

    public init(categories: Tensor, zeros: Bool) {
        self.categories = categories
        self.zeros = zeros
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let shape = inputs.first?.tensorType?.shape
        return [.tensor(TensorType(.float32, shape.map { $0 + [.value(categories.count)] }))]
    }

    public var description: String { "categories=\(categories.count) zeros=\(zeros)" }
}

/// Concatenates [N, d_i] (or [N]) inputs column-wise into float [N, Σ dims], truncating or zero-padding input
/// i to `inputDimensions[i]` columns (ai.onnx.ml FeatureVectorizer).
public struct MLFeatureVectorizerLayer: Layer {
    public static let kind = LayerKind("ml.featureVectorizer")
    public var inputDimensions: [Int]

    public init(inputDimensions: [Int]) { self.inputDimensions = inputDimensions }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let rows = inputs.first?.tensorType?.shape?.first ?? .unknown
        return [.tensor(TensorType(.float32, [rows, .value(inputDimensions.reduce(0, +))]))]
    }

    public var description: String { "inputdimensions=\(inputDimensions)" }
}

/// Support-vector regression over [N, F] rows into float [N, 1] (ai.onnx.ml SVMRegressor).
public struct SVMRegressorLayer: Layer {
    public enum Kernel: String, Sendable, Codable {
        case linear = "LINEAR"
        case poly = "POLY"
        case rbf = "RBF"
        case sigmoid = "SIGMOID"
    }
    public static let kind = LayerKind("ml.svmRegressor")
    public var kernel: Kernel
    public var gamma: Double
    public var coef0: Double
    public var degree: Int
    /// Row-major [supports, features]; empty for a linear model whose coefficients are the weights.
    public var supportVectors: [Float]
    public var supports: Int
    public var coefficients: [Float]
    public var rho: Float
    /// One-class models output +1 / -1 by the sign of the score.
    public var oneClass: Bool

    public init(
        kernel: Kernel, gamma: Double, coef0: Double, degree: Int, supportVectors: [Float], supports: Int,
        coefficients: [Float], rho: Float, oneClass: Bool
    ) {
        self.kernel = kernel
        self.gamma = gamma
        self.coef0 = coef0
        self.degree = degree
        self.supportVectors = supportVectors
        self.supports = supports
        self.coefficients = coefficients
        self.rho = rho
        self.oneClass = oneClass
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let rows: Dim = inputs.first?.tensorType?.shape.flatMap { $0.count == 2 ? $0[0] : .value(1) } ?? .unknown
        return [.tensor(TensorType(.float32, [rows, 1]))]
    }

    public var description: String { "kernel=\(kernel.rawValue) supports=\(supports) oneClass=\(oneClass)" }
}
