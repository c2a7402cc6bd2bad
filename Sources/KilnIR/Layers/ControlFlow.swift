/// Runs one of two bodies depending on a boolean scalar (ONNX If). Both bodies take no inputs (they read
/// captured values) and produce the same number of outputs.
public struct IfLayer: Layer {
    public static let kind = LayerKind("controlFlow.if")
    public var thenBranch: Graph
    public var elseBranch: Graph

    public init(thenBranch: Graph, elseBranch: Graph) {
        self.thenBranch = thenBranch
        self.elseBranch = elseBranch
    }

    public var subgraphs: [Graph] { [thenBranch, elseBranch] }

    public func replacingSubgraphs(_ graphs: [Graph]) -> IfLayer {
        guard graphs.count == 2 else { return self }
        return IfLayer(thenBranch: graphs[0], elseBranch: graphs[1])
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard thenBranch.outputs.count == elseBranch.outputs.count else {
            throw KilnError.invalidModel(
                "If branches have \(thenBranch.outputs.count) and \(elseBranch.outputs.count) outputs")
        }
        return zip(thenBranch.outputs, elseBranch.outputs).map { ControlFlowTypes.merge($0.type, $1.type) }
    }
}

/// A counted and/or conditional loop with loop-carried values and per-iteration scan outputs (ONNX Loop).
/// Inputs: max trip count (optional), condition (optional), carried initial values. The body takes
/// (iteration, condition, carried...) and returns (condition, carried..., scan outputs...).
public struct LoopLayer: Layer {
    public static let kind = LayerKind("controlFlow.loop")
    public var body: Graph

    public init(body: Graph) { self.body = body }

    public var subgraphs: [Graph] { [body] }

    public func replacingSubgraphs(_ graphs: [Graph]) -> LoopLayer {
        guard graphs.count == 1 else { return self }
        return LoopLayer(body: graphs[0])
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let carried = max(0, inputs.count - 2)
        guard body.inputs.count == carried + 2, body.outputs.count >= carried + 1 else {
            throw KilnError.invalidModel(
                "Loop body takes \(body.inputs.count) inputs and returns \(body.outputs.count) outputs; "
                    + "\(carried) loop-carried values need \(carried + 2) inputs and at least \(carried + 1) outputs")
        }
        var types: [ValueType?] = []
        for i in 0..<carried {
            types.append(ControlFlowTypes.merge(inputs[i + 2].type, body.outputs[i + 1].type))
        }
        for output in body.outputs.dropFirst(carried + 1) {
            types.append(ControlFlowTypes.stacked(output.type))
        }
        return types
    }
}

/// Iterates a body over slices of scan inputs along an axis, with state carried between iterations (ONNX
/// Scan). Opset 8 has a leading batch axis and an optional sequence-lengths input; later opsets configure
/// the scan axis and direction per input and output.
public struct ScanLayer: Layer {
    public static let kind = LayerKind("controlFlow.scan")
    public var body: Graph
    public var numScanInputs: Int
    /// Per scan input: the axis iterated (non-negative after import) and whether it runs backward.
    public var inputAxes: [Int]
    public var inputReversed: [Bool]
    /// Per scan output: the axis the iterations are stacked on and whether they are stacked backward.
    public var outputAxes: [Int]
    public var outputReversed: [Bool]
    /// Opset 8 form: axis 0 of every input and output is a batch axis and the scan axis is 1; input 0 is
    /// the optional sequence lengths.
    public var batched: Bool

    public init(
        body: Graph, numScanInputs: Int, inputAxes: [Int], inputReversed: [Bool], outputAxes: [Int],
        outputReversed: [Bool], batched: Bool = false
    ) {
        self.body = body
        self.numScanInputs = numScanInputs
        self.inputAxes = inputAxes
        self.inputReversed = inputReversed
        self.outputAxes = outputAxes
        self.outputReversed = outputReversed
        self.batched = batched
    }

    public var subgraphs: [Graph] { [body] }

    public func replacingSubgraphs(_ graphs: [Graph]) -> ScanLayer {
        guard graphs.count == 1 else { return self }
        var copy = self
        copy.body = graphs[0]
        return copy
    }

    public var numStates: Int { body.inputs.count - numScanInputs }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let states = numStates
        guard states >= 0, body.outputs.count >= states else {
            throw KilnError.invalidModel("Scan body has \(body.inputs.count) inputs for \(numScanInputs) scan inputs")
        }
        let offset = batched ? 1 : 0
        var types: [ValueType?] = []
        for i in 0..<states {
            let given = i + offset < inputs.count ? inputs[i + offset].type : nil
            types.append(ControlFlowTypes.merge(given, body.outputs[i].type))
        }
        for (k, output) in body.outputs.dropFirst(states).enumerated() {
            guard case .tensor(let t)? = output.type, var shape = t.shape else {
                types.append(output.type.flatMap { $0.tensorType }.map { .tensor(TensorType($0.dtype, nil)) })
                continue
            }
            if batched {
                shape.insert(.unknown, at: 0)
                shape.insert(.unknown, at: 0)
            } else {
                let axis = k < outputAxes.count ? outputAxes[k] : 0
                shape.insert(.unknown, at: min(max(axis, 0), shape.count))
            }
            types.append(.tensor(TensorType(t.dtype, shape)))
        }
        return types
    }

    public var description: String {
        var parts = ["scanInputs=\(numScanInputs)"]
        if batched { parts.append("batched") }
        if inputAxes.contains(where: { $0 != 0 }) { parts.append("inputAxes=\(inputAxes)") }
        if inputReversed.contains(true) { parts.append("inputReversed=\(inputReversed)") }
        if outputAxes.contains(where: { $0 != 0 }) { parts.append("outputAxes=\(outputAxes)") }
        if outputReversed.contains(true) { parts.append("outputReversed=\(outputReversed)") }
        return parts.joined(separator: ", ")
    }
}

/// Type helpers shared by the control-flow layers.
public enum ControlFlowTypes {
    /// The most specific type that covers both: equal dims stay, different dims become unknown.
    public static func merge(_ a: ValueType?, _ b: ValueType?) -> ValueType? {
        guard let a else { return b }
        guard let b else { return a }
        if a == b { return a }
        switch (a, b) {
        case (.tensor(let x), .tensor(let y)):
            guard x.dtype == y.dtype else { return a }
            guard let xs = x.shape, let ys = y.shape, xs.count == ys.count else {
                return .tensor(TensorType(x.dtype, nil))
            }
            return .tensor(TensorType(x.dtype, zip(xs, ys).map { $0 == $1 ? $0 : .unknown }))
        case (.sequence(let x), .sequence(let y)): return .sequence(merge(x, y))
        case (.optional(let x), .optional(let y)): return .optional(merge(x, y))
        default: return a
        }
    }

    /// A per-iteration tensor type stacked along a new leading axis of unknown length.
    public static func stacked(_ type: ValueType?) -> ValueType? {
        guard case .tensor(let t)? = type else { return nil }
        return .tensor(TensorType(t.dtype, t.shape.map { [.unknown] + $0 }))
    }
}
