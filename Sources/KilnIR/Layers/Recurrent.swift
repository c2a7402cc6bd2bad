/// The cell a recurrent layer runs at each step.
public enum RecurrentCell: String, Sendable, Hashable, Codable {
    case rnn, gru, lstm

    /// Gates per hidden unit: rows of W and R are `gates * hiddenSize`.
    public var gates: Int {
        switch self {
        case .rnn: 1
        case .gru: 3
        case .lstm: 4
        }
    }

    /// Activation functions each direction uses (f; f, g; f, g, h).
    public var activationCount: Int {
        switch self {
        case .rnn: 1
        case .gru: 2
        case .lstm: 3
        }
    }
}

public enum RecurrentDirection: String, Sendable, Hashable, Codable {
    case forward, reverse, bidirectional
    public var count: Int { self == .bidirectional ? 2 : 1 }
}

/// An activation function of a recurrent cell, with its parameters resolved at import.
public struct RecurrentActivation: Sendable, Hashable, CustomStringConvertible, Codable {
    public enum Kind: String, Sendable, Hashable, CaseIterable, Codable {
        case relu, tanh, sigmoid, affine, leakyRelu, thresholdedRelu, scaledTanh, hardSigmoid, elu, softsign, softplus
    }
    public var kind: Kind
    public var alpha: Float
    public var beta: Float

    public init(_ kind: Kind, alpha: Float = 0, beta: Float = 0) {
        self.kind = kind
        self.alpha = alpha
        self.beta = beta
    }

    public var description: String {
        switch kind {
        case .affine, .scaledTanh, .hardSigmoid: "\(kind.rawValue)(\(alpha),\(beta))"
        case .leakyRelu, .thresholdedRelu, .elu: "\(kind.rawValue)(\(alpha))"
        default: kind.rawValue
        }
    }
}

/// A recurrent layer over a sequence: RNN, GRU or LSTM (ONNX). Inputs: X, W, R, B, sequence_lens,
/// initial_h, and for LSTM initial_c and peepholes P. Outputs: Y, Y_h (and Y_c for LSTM).
public struct RecurrentLayer: Layer {
    public static let kind = LayerKind("recurrent")
    public var cell: RecurrentCell
    public var direction: RecurrentDirection
    public var hiddenSize: Int
    /// `cell.activationCount` per direction, forward first.
    public var activations: [RecurrentActivation]
    /// Gate pre-activations are clamped to [-clip, clip] when set.
    public var clip: Float?
    /// GRU: apply the reset gate after the recurrent product.
    public var linearBeforeReset: Bool
    /// LSTM: couple the input and forget gates.
    public var inputForget: Bool
    /// 0: [seq, batch, ...]; 1: [batch, seq, ...] for X, Y and the states.
    public var batchFirst: Bool

    public init(
        cell: RecurrentCell, direction: RecurrentDirection, hiddenSize: Int, activations: [RecurrentActivation],
        clip: Float? = nil, linearBeforeReset: Bool = false, inputForget: Bool = false, batchFirst: Bool = false
    ) {
        self.cell = cell
        self.direction = direction
        self.hiddenSize = hiddenSize
        self.activations = activations
        self.clip = clip
        self.linearBeforeReset = linearBeforeReset
        self.inputForget = inputForget
        self.batchFirst = batchFirst
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil, nil, nil] }
        let dirs = Dim.value(direction.count)
        let hidden = Dim.value(hiddenSize)
        guard let s = x.shape, s.count == 3 else {
            throw KilnError.invalidModel("recurrent input X must have rank 3")
        }
        let (seq, batch) = batchFirst ? (s[1], s[0]) : (s[0], s[1])
        let y = batchFirst ? [batch, seq, dirs, hidden] : [seq, dirs, batch, hidden]
        let state = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
        var types: [ValueType?] = [.tensor(TensorType(x.dtype, y)), .tensor(TensorType(x.dtype, state))]
        if cell == .lstm { types.append(.tensor(TensorType(x.dtype, state))) }
        return types
    }

    public var description: String {
        var parts = ["cell=\(cell.rawValue)", "direction=\(direction.rawValue)", "hidden=\(hiddenSize)"]
        parts.append("activations=[\(activations.map(\.description).joined(separator: ","))]")
        if let clip { parts.append("clip=\(clip)") }
        if linearBeforeReset { parts.append("linearBeforeReset") }
        if inputForget { parts.append("inputForget") }
        if batchFirst { parts.append("layout=1") }
        return parts.joined(separator: ", ")
    }
}
