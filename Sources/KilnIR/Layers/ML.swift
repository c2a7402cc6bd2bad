/// Maps each input element (string or number) through a key -> value table (ai.onnx.ml LabelEncoder).
/// Keys and values are 1-D tensors of equal length; `defaultValue` (one element of the values' type) is used
/// for missing keys. The output has the input's shape and the values' type.
public struct LabelEncoderLayer: Layer {
    public static let kind = LayerKind("ml.labelEncoder")
    public var keys: Tensor
    public var values: Tensor
    public var defaultValue: Tensor

    public init(keys: Tensor, values: Tensor, defaultValue: Tensor) {
        self.keys = keys
        self.values = values
        self.defaultValue = defaultValue
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [.tensor(TensorType(values.dtype, inputs.first?.tensorType?.shape))]
    }

    public var description: String { "keys=\(keys.dtype)[\(keys.count)] values=\(values.dtype)" }
}

/// Selects entries of the last axis by index (ai.onnx.ml ArrayFeatureExtractor); a 1-D input gives [1, k].
public struct ArrayFeatureExtractorLayer: Layer {
    public static let kind = LayerKind("ml.arrayFeatureExtractor")
    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        let k: Dim =
            (inputs.count > 1 ? inputs[1].tensorType?.shape : nil).flatMap { dims in
                dims.reduce(Dim.value(1)) { acc, d in
                    if case .value(let a) = acc, case .value(let b) = d { return .value(a * b) }
                    return .unknown
                }
            } ?? .unknown
        guard let shape = x.shape else { return [.tensor(TensorType(x.dtype, nil))] }
        return [.tensor(TensorType(x.dtype, shape.count <= 1 ? [1, k] : Array(shape.dropLast()) + [k]))]
    }
}

/// 1 where the input exceeds a threshold, else 0, in the input's type (ai.onnx.ml Binarizer).
public struct BinarizerLayer: Layer {
    public static let kind = LayerKind("ml.binarizer")
    public var threshold: Float

    public init(threshold: Float) { self.threshold = threshold }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
    public var description: String { "threshold=\(threshold)" }
}

/// A tree ensemble evaluated per row of a [N, F] input into [N, targets] (ai.onnx.ml TreeEnsemble v5 and the
/// older TreeEnsembleRegressor / TreeEnsembleClassifier, whose leaves may feed several targets).
public struct TreeEnsembleLayer: Layer {
    public enum Comparison: Int, Sendable, Codable {
        case leq = 0
        case lt, gte, gt, eq, neq, member
    }
    public enum Aggregate: Int, Sendable, Codable {
        case average = 0
        case sum, min, max
    }
    public enum PostTransform: Int, Sendable, Codable {
        case none = 0
        case softmax, logistic, softmaxZero, probit
    }

    /// One interior node. A branch is a node index, or a leaf index when the matching `*IsLeaf` is set.
    public struct Node: Sendable, Codable {
        public var feature: Int
        public var comparison: Comparison
        public var split: Double
        /// Values tested by `.member` nodes.
        public var members: Set<Double>
        public var trueBranch: Int
        public var trueIsLeaf: Bool
        public var falseBranch: Int
        public var falseIsLeaf: Bool
        /// A NaN feature value takes the true branch.
        public var missingTracksTrue: Bool

        public init(
            feature: Int, comparison: Comparison, split: Double, members: Set<Double>, trueBranch: Int,
            trueIsLeaf: Bool, falseBranch: Int, falseIsLeaf: Bool, missingTracksTrue: Bool
        ) {
            self.feature = feature
            self.comparison = comparison
            self.split = split
            self.members = members
            self.trueBranch = trueBranch
            self.trueIsLeaf = trueIsLeaf
            self.falseBranch = falseBranch
            self.falseIsLeaf = falseIsLeaf
            self.missingTracksTrue = missingTracksTrue
        }

        /// Members sorted, so that equal layers encode to equal bytes (a set's order varies between runs).
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(feature, forKey: .feature)
            try c.encode(comparison, forKey: .comparison)
            try c.encode(split, forKey: .split)
            try c.encode(members.sorted(), forKey: .members)
            try c.encode(trueBranch, forKey: .trueBranch)
            try c.encode(trueIsLeaf, forKey: .trueIsLeaf)
            try c.encode(falseBranch, forKey: .falseBranch)
            try c.encode(falseIsLeaf, forKey: .falseIsLeaf)
            try c.encode(missingTracksTrue, forKey: .missingTracksTrue)
        }
    }

    /// What one leaf adds to one target.
    public struct LeafWeight: Sendable, Codable {
        public var target: Int
        public var weight: Double
        public init(target: Int, weight: Double) {
            self.target = target
            self.weight = weight
        }
    }

    /// TreeEnsembleClassifier's labels: the output label is the class with the highest score.
    public enum ClassLabels: Sendable, Codable {
        case int64s([Int64])
        case strings([String])
        public var count: Int {
            switch self {
            case .int64s(let v): v.count
            case .strings(let v): v.count
            }
        }
    }

    /// The root of one tree: a node index, or a leaf index when the tree is a single leaf.
    public struct Root: Sendable, Codable {
        public var index: Int
        public var isLeaf: Bool
        public init(index: Int, isLeaf: Bool) {
            self.index = index
            self.isLeaf = isLeaf
        }
    }

    public static let kind = LayerKind("ml.treeEnsemble")
    public var nodes: [Node]
    public var leaves: [[LeafWeight]]
    /// Root of each tree: a node index, or a leaf index when the tree is a single leaf.
    public var roots: [Root]
    public var targets: Int
    public var aggregate: Aggregate
    public var postTransform: PostTransform
    /// Added per target after aggregation (empty = none).
    public var baseValues: [Double]
    /// Set for TreeEnsembleClassifier, which outputs (labels, scores).
    public var classLabels: ClassLabels?
    /// Output element type; nil = the input's floating-point type.
    public var outputType: DType?

    public init(
        nodes: [Node], leaves: [[LeafWeight]], roots: [Root], targets: Int,
        aggregate: Aggregate, postTransform: PostTransform, baseValues: [Double] = [], classLabels: ClassLabels? = nil,
        outputType: DType? = nil
    ) {
        self.nodes = nodes
        self.leaves = leaves
        self.roots = roots
        self.targets = targets
        self.aggregate = aggregate
        self.postTransform = postTransform
        self.baseValues = baseValues
        self.classLabels = classLabels
        self.outputType = outputType
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil, nil] }
        let rows: Dim = x.shape.flatMap { $0.count == 2 ? $0[0] : ($0.count == 1 ? .value(1) : nil) } ?? .unknown
        let scoreType = outputType ?? (x.dtype.isFloatingPoint ? x.dtype : .float32)
        let scores = ValueType.tensor(TensorType(scoreType, [rows, .value(targets)]))
        guard let classLabels else { return [scores] }
        let labelType: DType = if case .strings = classLabels { .string } else { .int64 }
        return [.tensor(TensorType(labelType, [rows])), scores]
    }

    public var description: String {
        "trees=\(roots.count) nodes=\(nodes.count) leaves=\(leaves.count) targets=\(targets) "
            + "aggregate=\(aggregate) post=\(postTransform)" + (classLabels == nil ? "" : " classifier")
    }
}
