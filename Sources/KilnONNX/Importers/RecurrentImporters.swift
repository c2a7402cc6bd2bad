import KilnIR

/// RNN, GRU and LSTM (one recurrent layer kind), plus Attention and RotaryEmbedding (in
/// RecurrentImporters+Attention.swift).
enum RecurrentImporters {
    static let table: [OperatorImporter] =
        [
            OperatorImporter("RNN", since: 1) { c in try importRecurrent(c, .rnn) },
            OperatorImporter("GRU", since: 1) { c in try importRecurrent(c, .gru) },
            OperatorImporter("LSTM", since: 1) { c in try importRecurrent(c, .lstm) },
        ] + AttentionImporters.table

    private static func importRecurrent(_ c: ImportContext, _ cell: RecurrentCell) throws {
        let directionName = try c.string("direction", default: "forward")
        guard let direction = RecurrentDirection(rawValue: directionName) else {
            throw c.invalid("unknown direction '\(directionName)'")
        }
        var hidden = try c.optionalInt("hidden_size")
        if hidden == nil, case .tensor(let r)? = c.inputType(2), let dims = r.shape, dims.count == 3 {
            hidden = dims[2].value
        }
        guard let hiddenSize = hidden, hiddenSize > 0 else { throw c.invalid("hidden_size is required") }
        let defaults: [String] =
            switch cell {
            case .rnn: ["Tanh"]
            case .gru: ["Sigmoid", "Tanh"]
            case .lstm: ["Sigmoid", "Tanh", "Tanh"]
            }
        var names = try c.strings("activations", default: [])
        if names.isEmpty { names = defaults }
        if names.count == cell.activationCount && direction == .bidirectional { names += names }
        guard names.count == cell.activationCount * direction.count else {
            throw c.invalid("\(names.count) activations given; \(cell.activationCount * direction.count) expected")
        }
        var alphas = try c.floats("activation_alpha", default: [])[...]
        var betas = try c.floats("activation_beta", default: [])[...]
        let activations = try names.map { name -> RecurrentActivation in
            guard let (kind, alpha, beta) = activationDefaults(name) else {
                throw c.unsupported("activation function '\(name)' is not supported")
            }
            var a = RecurrentActivation(kind)
            if let alpha { a.alpha = alphas.popFirst() ?? alpha }
            if let beta { a.beta = betas.popFirst() ?? beta }
            return a
        }
        let clip: Float? = c.has("clip") ? try c.float("clip") : nil
        let layout = try c.int("layout", default: 0)
        guard layout == 0 || layout == 1 else { throw c.invalid("layout must be 0 or 1, is \(layout)") }
        let layer = RecurrentLayer(
            cell: cell, direction: direction, hiddenSize: hiddenSize, activations: activations, clip: clip,
            linearBeforeReset: try c.int("linear_before_reset", default: 0) != 0,
            inputForget: try c.int("input_forget", default: 0) != 0, batchFirst: layout == 1)
        c.emit(layer)
    }

    /// The kind of an ONNX activation name and its default alpha and beta (nil: not used).
    private static func activationDefaults(_ name: String) -> (RecurrentActivation.Kind, Float?, Float?)? {
        switch name.lowercased() {
        case "relu": (.relu, nil, nil)
        case "tanh": (.tanh, nil, nil)
        case "sigmoid": (.sigmoid, nil, nil)
        case "affine": (.affine, 1, 0)
        case "leakyrelu": (.leakyRelu, 0.01, nil)
        case "thresholdedrelu": (.thresholdedRelu, 1, nil)
        case "scaledtanh": (.scaledTanh, 1, 1)
        case "hardsigmoid": (.hardSigmoid, 0.2, 0.5)
        case "elu": (.elu, 1, nil)
        case "softsign": (.softsign, nil, nil)
        case "softplus": (.softplus, nil, nil)
        default: nil
        }
    }
}
