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
        let k: Dim = (inputs.count > 1 ? inputs[1].tensorType?.shape : nil).flatMap { dims in
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

/// A tree ensemble evaluated per row of a [N, F] input into [N, targets] (ai.onnx.ml TreeEnsemble, v5).
public struct TreeEnsembleLayer: Layer {
    public enum Comparison: Int, Sendable { case leq = 0, lt, gte, gt, eq, neq, member }
    public enum Aggregate: Int, Sendable { case average = 0, sum, min, max }
    public enum PostTransform: Int, Sendable { case none = 0, softmax, logistic, softmaxZero, probit }

    /// One interior node. A branch is a node index, or a leaf index when the matching `*IsLeaf` is set.
    public struct Node: Sendable {
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
    }

    public static let kind = LayerKind("ml.treeEnsemble")
    public var nodes: [Node]
    public var leafTargets: [Int]
    public var leafWeights: [Double]
    /// Root of each tree: a node index, or a leaf index when the tree is a single leaf.
    public var roots: [(index: Int, isLeaf: Bool)]
    public var targets: Int
    public var aggregate: Aggregate
    public var postTransform: PostTransform

    public init(
        nodes: [Node], leafTargets: [Int], leafWeights: [Double], roots: [(index: Int, isLeaf: Bool)], targets: Int,
        aggregate: Aggregate, postTransform: PostTransform
    ) {
        self.nodes = nodes
        self.leafTargets = leafTargets
        self.leafWeights = leafWeights
        self.roots = roots
        self.targets = targets
        self.aggregate = aggregate
        self.postTransform = postTransform
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        let rows: Dim = x.shape.flatMap { $0.count == 2 ? $0[0] : nil } ?? .unknown
        return [.tensor(TensorType(x.dtype, [rows, .value(targets)]))]
    }

    public var description: String {
        "trees=\(roots.count) nodes=\(nodes.count) leaves=\(leafWeights.count) targets=\(targets) "
            + "aggregate=\(aggregate) post=\(postTransform)"
    }
}
