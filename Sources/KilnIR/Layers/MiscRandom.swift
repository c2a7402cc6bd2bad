/// Random generators (ONNX RandomNormal[Like], RandomUniform[Like], Bernoulli, Multinomial). Their outputs are
/// not a function of their inputs, so the optimizer never folds them.
public struct RandomLayer: Layer {
    public enum Distribution: Sendable, Equatable, Codable {
        case normal(mean: Float, scale: Float)
        case uniform(low: Float, high: Float)
        /// 1 with the probability given by each input element, else 0.
        case bernoulli
        /// `samples` class indices per row, drawn from the row's unnormalised log-probabilities.
        case multinomial(samples: Int)
    }

    public static let kind = LayerKind("misc.random")
    public var distribution: Distribution
    /// Output type; nil = the input's type (the -Like ops and Bernoulli).
    public var dtype: DType?
    /// Output shape for the generators without an input.
    public var shape: [Int]?
    /// A fixed seed makes every run produce the same values; nil uses the backend's fixed default seed.
    public var seed: Float?

    public init(distribution: Distribution, dtype: DType?, shape: [Int]?, seed: Float?) {
        self.distribution = distribution
        self.dtype = dtype
        self.shape = shape
        self.seed = seed
    }

    public var isDeterministic: Bool { false }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let input = inputs.first?.tensorType
        if case .multinomial(let samples) = distribution {
            let batch = input?.shape?.first ?? .unknown
            return [.tensor(TensorType(dtype ?? .int32, [batch, .value(samples)]))]
        }
        guard let outType = dtype ?? input?.dtype else { return [nil] }
        if let shape { return [.tensor(TensorType(outType, dims: shape))] }
        return [.tensor(TensorType(outType, input?.shape))]
    }

    public var description: String {
        var text = "\(distribution)"
        if let dtype { text += " dtype=\(dtype)" }
        if let shape { text += " shape=\(shape)" }
        if let seed { text += " seed=\(seed)" }
        return text
    }
}
