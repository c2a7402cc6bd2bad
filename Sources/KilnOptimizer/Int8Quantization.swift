import KilnIR

/// Post-training quantization: replaces each float convolution and matMul whose weights are constants by its
/// int8 form (`convolution.int8`, `matMul.int8`), given the calibrated range (the largest magnitude kept,
/// `amax`) of its input. Weights are quantized symmetrically per output channel to [-127, 127]; activations
/// symmetrically per tensor, scale `amax / 127`. Bias, residual and activation stay float in the epilogue.
public struct Int8Quantization: Sendable {
    /// Calibrated `amax` per value name.
    public var ranges: [String: Float]
    /// Candidates that stay float, with the reason (the accuracy guard moved them, the device runs them faster
    /// in 16 bits, ...).
    public var keepFloat: [String: String]

    public init(ranges: [String: Float], keepFloat: [String: String] = [:]) {
        self.ranges = ranges
        self.keepFloat = keepFloat
    }

    /// A layer that could run in int8, and the value whose range calibration must measure.
    public struct Candidate: Sendable, Hashable {
        public var node: String
        public var input: String
    }

    /// The layers `apply` would quantize given a range for every input, in graph order; `skipped` hears the
    /// others of their kinds with the reason.
    public static func candidates(_ graph: Graph, skipped: ((String, String) -> Void)? = nil) -> [Candidate] {
        graph.nodes.compactMap { node in
            if let reason = unsupportedReason(node, graph) {
                if node.kind == ConvolutionLayer.kind || node.kind == MatMulLayer.kind { skipped?(node.name, reason) }
                return nil
            }
            return Candidate(node: node.name, input: node.inputs[0])
        }
    }

    /// Rewrites `graph`; returns the names of the nodes now in int8. `skipped` hears each candidate left
    /// float and why.
    @discardableResult
    public func apply(_ graph: inout Graph, skipped: ((String, String) -> Void)? = nil) throws -> [String] {
        var quantized: [String] = []
        for candidate in Self.candidates(graph) {
            if let reason = keepFloat[candidate.node] {
                skipped?(candidate.node, reason)
                continue
            }
            guard let amax = ranges[candidate.input] else {
                skipped?(candidate.node, "no calibrated range for its input '\(candidate.input)'")
                continue
            }
            guard amax.isFinite, (amax / 127).isNormal else {
                skipped?(candidate.node, "the calibrated range of '\(candidate.input)' is \(amax)")
                continue
            }
            guard let index = graph.nodes.firstIndex(where: { $0.name == candidate.node }) else { continue }
            let input = ActivationQuantization(scale: amax / 127)
            if try rewrite(index, input, &graph) { quantized.append(candidate.node) }
        }
        // The float weights the int8 layers replaced.
        _ = try DeadCodeElimination().run(&graph, PassContext(evaluate: { _, _ in [] }))
        return quantized
    }

    static func unsupportedReason(_ node: Node, _ graph: Graph) -> String? {
        guard node.layer is ConvolutionLayer || node.layer is MatMulLayer else { return "not a convolution or matMul" }
        guard let w = graph.initializers[node.inputs[1]], w.dtype == .float32 else {
            return "its weights are not float32 constants"
        }
        // A depthwise convolution does little arithmetic per byte it moves; in int8 it would only add the
        // quantization (and Kiln has no int8 depthwise kernel that beats its float one).
        if let conv = node.layer as? ConvolutionLayer, conv.parameters.group > 1, w.rank >= 2, w.shape[1] == 1 {
            return "depthwise convolution: memory-bound, not quantized"
        }
        return layoutReason(node, graph, weights: w.shape)
    }

    /// Why the int8 layers cannot express this float convolution or matMul with weights of shape `weights`,
    /// or nil when they can: a 2-D convolution with a constant bias of one value per channel; a matMul of A
    /// (rank 2 or more, not transposed) by a 2-D B, whose C is a constant bias of one value per column or, with
    /// beta 1, a residual of the output's exact shape.
    static func layoutReason(_ node: Node, _ graph: Graph, weights: [Int]) -> String? {
        guard let xType = node.inputs.first.flatMap({ graph.type(of: $0)?.tensorType }), xType.dtype == .float32
        else { return "its input is not float32" }
        func present(_ i: Int) -> Bool { node.inputs.count > i && !node.inputs[i].isEmpty }
        if node.layer is ConvolutionLayer {
            guard weights.count == 4 else { return "int8 convolutions are 2-D only (weights \(weights))" }
            if present(2) {
                guard let b = graph.initializers[node.inputs[2]], b.dtype == .float32, b.count == weights[0] else {
                    return "its bias is not a constant of \(weights[0]) float32 values"
                }
            }
            return nil
        }
        guard let matMul = node.layer as? MatMulLayer else { return "not a convolution or matMul" }
        guard !matMul.transposeA else { return "A is transposed" }
        guard xType.shape.map({ $0.count >= 2 }) ?? false else { return "A has rank below 2" }
        guard weights.count == 2 else { return "B is not 2-D" }
        let n = matMul.transposeB ? weights[0] : weights[1]
        guard present(2) else { return nil }
        if let c = graph.initializers[node.inputs[2]] {
            guard c.count == n, c.shape.last == n, c.dtype == .float32 else {
                return "its C input is not a bias of \(n) values"
            }
            return nil
        }
        guard matMul.beta == 1, !present(3) else { return "its C input is scaled or comes with a second residual" }
        guard let output = node.outputs.first.flatMap({ graph.type(of: $0)?.tensorType }),
            graph.type(of: node.inputs[2])?.tensorType == output, output.concreteShape != nil
        else { return "its C input is broadcast, not a residual of the output's shape" }
        return nil
    }

    private func rewrite(_ index: Int, _ input: ActivationQuantization, _ graph: inout Graph) throws -> Bool {
        let node = graph.nodes[index]
        guard let w = graph.initializers[node.inputs[1]] else { return false }
        let transposeB = (node.layer as? MatMulLayer)?.transposeB ?? true
        let rows = node.layer is ConvolutionLayer || transposeB ? w.shape[0] : w.shape[1]
        let (q, scales) = try Self.quantizeRows(w, rows: rows, transposed: !transposeB)
        return Self.replace(index, input: input, weights: q, scales: scales, &graph)
    }

    /// Replaces the float convolution or matMul at `index` by its int8 form reading `input` quantized, with
    /// int8 `weights` (a convolution's `[M, C/group, k...]`, a matMul's `[N, K]`) and one scale per output
    /// channel. A matMul's alpha joins the scales and beta a constant bias. Returns false for other layers.
    static func replace(
        _ index: Int, input: ActivationQuantization, weights q: Tensor, scales: [Float], _ graph: inout Graph
    ) -> Bool {
        let node = graph.nodes[index]
        var inputs = [node.inputs[0]]
        let layer: any Layer
        if let conv = node.layer as? ConvolutionLayer {
            inputs += weightNames(q, scales, node.inputs[1], &graph)
            inputs.append(node.inputs.count > 2 ? node.inputs[2] : "")
            if conv.epilogue.residual { inputs.append(node.inputs[3]) }
            layer = QuantizedConvolutionLayer(conv.parameters, input: input, epilogue: conv.epilogue)
        } else if let matMul = node.layer as? MatMulLayer {
            inputs += weightNames(q, scales.map { $0 * matMul.alpha }, node.inputs[1], &graph)
            var epilogue = matMul.epilogue
            let c = node.inputs.count > 2 ? node.inputs[2] : ""
            if let bias = graph.initializers[c], let doubles = try? bias.doubleValues() {
                let values = doubles.map { Float($0) * matMul.beta }
                inputs.append(graph.addConstant(Tensor(shape: [values.count], scalars: values), named: c + ".bias"))
                if node.inputs.count > 3, !node.inputs[3].isEmpty { inputs.append(node.inputs[3]) }
            } else {
                inputs.append("")
                if !c.isEmpty {
                    inputs.append(c)
                    epilogue.residual = true
                }
            }
            layer = QuantizedMatMulLayer(input: input, epilogue: epilogue)
        } else {
            return false
        }
        graph.nodes[index] = Node(name: node.name, layer: layer, inputs: inputs, outputs: node.outputs)
        return true
    }

    private static func weightNames(_ q: Tensor, _ scales: [Float], _ base: String, _ graph: inout Graph) -> [String] {
        [
            graph.addConstant(q, named: base + (q.dtype == .int8 ? ".int8" : ".\(q.dtype)")),
            graph.addConstant(Tensor(shape: [scales.count], scalars: scales), named: base + ".scale"),
        ]
    }

    /// Symmetric per-row quantization to [-127, 127]: row `r` is output channel `r`. `transposed`: the tensor
    /// is `[K, rows]` (a matMul's B) and the result is `[rows, K]`.
    static func quantizeRows(_ w: Tensor, rows: Int, transposed: Bool) throws -> (Tensor, [Float]) {
        let values = try w.doubleValues().map { Float($0) }
        let depth = rows == 0 ? 0 : values.count / rows
        func element(_ r: Int, _ k: Int) -> Float { transposed ? values[k * rows + r] : values[r * depth + k] }
        var scales = [Float](repeating: 1, count: rows)
        var q = [Int8](repeating: 0, count: values.count)
        for r in 0..<rows {
            var amax: Float = 0
            // Written so that a NaN makes amax NaN (Swift's max would drop it).
            for k in 0..<depth where !(abs(element(r, k)) <= amax) { amax = abs(element(r, k)) }
            guard amax.isFinite else {
                throw KilnError.invalidArgument("weights \(w.shape) hold a non-finite value in row \(r)")
            }
            // A row of zeros (or of values too small to scale) quantizes to zeros.
            let scale = (amax / 127).isNormal ? amax / 127 : 1
            scales[r] = scale
            for k in 0..<depth {
                q[r * depth + k] = Int8(min(max((element(r, k) / scale).rounded(.toNearestOrEven), -127), 127))
            }
        }
        let shape = transposed ? [rows, depth] : w.shape
        return (Tensor(shape: shape, scalars: q), scales)
    }
}
