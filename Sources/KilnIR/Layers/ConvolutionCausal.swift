/// ONNX CausalConvWithState: a stateful causal 1-D depthwise convolution. Inputs: X `[N, C, L]`, W `[C, 1, K]`,
/// optional bias `[C]`, optional past state `[N, C, K-1]` (zeros when absent). Outputs: Y `[N, C, L]` and the
/// present state, the last K-1 positions of past state followed by X.
public struct CausalConvolutionLayer: Layer {
    public static let kind = LayerKind("convolution.causal")

    public enum Activation: String, Sendable, Hashable, Codable {
        case none
        /// x * sigmoid(x); ONNX also calls it swish.
        case silu
    }

    public var activation: Activation

    public init(activation: Activation = .none) { self.activation = activation }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil, nil] }
        var state: ValueType? = .tensor(TensorType(x.dtype, nil))
        if let xs = x.shape, xs.count == 3, inputs.count > 1, let ws = inputs[1].tensorType?.shape, ws.count == 3 {
            let k: Dim = ws[2].value.map { .value($0 - 1) } ?? .unknown
            state = .tensor(TensorType(x.dtype, [xs[0], xs[1], k]))
        }
        return [.tensor(x), state]
    }

    public var description: String { activation == .none ? "" : "activation=\(activation.rawValue)" }
}
