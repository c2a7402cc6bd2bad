import KilnIR

/// Explicit quantization (ONNX QuantizeLinear/DequantizeLinear models): a convolution or matMul whose input is
/// `DequantizeLinear(QuantizeLinear(x))` and whose weights are `DequantizeLinear` of int8 constants (symmetric,
/// per tensor or per output channel) becomes `convolution.int8` / `matMul.int8`, which quantizes `x` itself
/// with the same scale and zero point and multiplies in integers: the same numbers as the Q/DQ graph up to
/// float rounding, with no quantize or dequantize kernel left around it. FP8 models fold the same way: input
/// and weights quantized to float8e4m3fn give the same layers with float8 operands.
///
/// Also removes a Q/DQ pair in front of max pooling or pure data movement when the same pair follows it
/// (quantize-dequantize is monotone and idempotent, so it commutes with taking a maximum or moving values),
/// and finally turns the dequantization of constant weights that no int8 layer took into float constants.
public struct QDQFolding: Pass {
    public let name = "qdq-folding"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var changed = try graph.rewriteEachNode { index, graph in try hoistPair(at: index, &graph) }
        changed = try graph.rewriteEachNode { index, graph in try fold(at: index, &graph, context) } || changed
        changed = graph.rewriteEachNode { index, graph in absorbOutputPair(at: index, &graph) } || changed
        // What no int8 layer took becomes float constants: nothing dequantizes weights per inference.
        return try ConstantFolding(.weightDequantization).run(&graph, context) || changed
    }

    // MARK: Q/DQ pairs

    /// `(x, scale, zero point, type)` when `value` is `DequantizeLinear(QuantizeLinear(x))` with one scalar scale
    /// and zero point shared by both, into int8, uint8 or float8e4m3fn (saturating).
    static func quantizedPair(
        _ value: String, _ view: PatternView
    ) -> (x: String, quantization: ActivationQuantization)? {
        let graph = view.graph
        guard let d = view.producers[value], let dq = graph.nodes[d].layer as? DequantizeLayer,
            dq.blockSize == 0, graph.type(of: value)?.tensorType?.dtype == .float32,
            let q = view.producers[graph.nodes[d].inputs[0]],
            let quantize = graph.nodes[q].layer as? QuantizeLayer, quantize.blockSize == 0, quantize.saturate,
            quantize.precision == nil || quantize.precision == .float32,
            let x = graph.nodes[q].inputs.first, graph.type(of: x)?.tensorType?.dtype == .float32,
            let type = graph.type(of: graph.nodes[q].outputs[0])?.tensorType?.dtype,
            [.int8, .uint8, .float8e4m3fn].contains(type)
        else { return nil }
        let qInputs = graph.nodes[q].inputs
        let dInputs = graph.nodes[d].inputs
        guard let scale = scalar(qInputs, 1, graph), scale == scalar(dInputs, 1, graph), scale > 0, scale.isFinite,
            let zero = zeroPoint(qInputs, graph), zero == zeroPoint(dInputs, graph)
        else { return nil }
        let quantization = ActivationQuantization(scale: Float(scale), zeroPoint: zero, type: type)
        return (try? quantization.validate()) == nil ? nil : (x, quantization)
    }

    /// `a = Q/DQ(y)`, `b = op(a)`, `c = Q/DQ(b)` with one scale: `op` reads `y` directly.
    private func hoistPair(at index: Int, _ graph: inout Graph) throws -> Bool {
        let node = graph.nodes[index]
        guard Self.commutesWithQuantization(node), let input = node.inputs.first, let output = node.outputs.first
        else { return false }
        let view = PatternView(graph)
        guard let (y, before) = Self.quantizedPair(input, view) else { return false }
        let readers = graph.nodes.filter { $0.inputs.contains(output) }
        // Every use is one of these readers (a subgraph capturing the value is a use they do not show), and each
        // is a Q/DQ pair with the same quantization.
        guard !readers.isEmpty,
            view.uses[output] == readers.reduce(0, { $0 + $1.inputs.filter { $0 == output }.count }),
            !graph.outputs.contains(where: { $0.name == output }),
            readers.allSatisfy({ reader in
                guard reader.layer is QuantizeLayer, let q = reader.outputs.first,
                    let d = view.soleConsumer(of: q),
                    let (_, same) = Self.quantizedPair(graph.nodes[d].outputs[0], view)
                else { return false }
                return same == before
            })
        else { return false }
        graph.nodes[index].inputs[0] = y
        return true
    }

    /// Layers whose result on quantize-dequantized values equals quantize-dequantize of their result.
    static func commutesWithQuantization(_ node: Node) -> Bool {
        guard node.outputs.count == 1 else { return false }
        if let pool = node.layer as? PoolLayer { return pool.op == .max }
        return node.layer is ReshapeLayer || node.layer is TransposeLayer
    }

    // MARK: Products

    private func fold(at index: Int, _ graph: inout Graph, _ context: PassContext) throws -> Bool {
        let node = graph.nodes[index]
        guard node.layer is ConvolutionLayer || node.layer is MatMulLayer, node.inputs.count >= 2 else { return false }
        let view = PatternView(graph)
        guard let (weights, scales) = quantizedWeights(node, view) else { return false }
        guard let (x, quantization) = Self.quantizedPair(node.inputs[0], view) else {
            context.rejected?(
                node.name, "\(weights.dtype.onnxName) weights not folded: its input is not quantize-dequantized")
            return false
        }
        guard quantization.isFloat8 == (weights.dtype == .float8e4m3fn) else {
            context.rejected?(
                node.name,
                "not folded: \(weights.dtype.onnxName) weights with an input quantized to \(quantization.type.onnxName)"
            )
            return false
        }
        var asWritten = node
        if var matMul = node.layer as? MatMulLayer {
            // The weights are [N, K] now: check the layout as a transposed B of that shape.
            matMul.transposeB = true
            asWritten.layer = matMul
        }
        if let reason = Int8Quantization.layoutReason(asWritten, graph, weights: weights.shape) {
            context.rejected?(node.name, "int8 not folded: \(reason)")
            return false
        }
        graph.nodes[index].inputs[0] = x
        return Int8Quantization.replace(index, input: quantization, weights: weights, scales: scales, &graph)
    }

    /// An int8 layer whose result only a Q/DQ pair reads quantize-dequantizes it itself (`output`).
    private func absorbOutputPair(at index: Int, _ graph: inout Graph) -> Bool {
        let node = graph.nodes[index]
        guard node.layer is QuantizedConvolutionLayer || node.layer is QuantizedMatMulLayer,
            (node.layer as? QuantizedConvolutionLayer)?.output == nil,
            (node.layer as? QuantizedMatMulLayer)?.output == nil, let y = node.outputs.first
        else { return false }
        let view = PatternView(graph)
        guard let q = view.soleConsumer(of: y), graph.nodes[q].layer is QuantizeLayer,
            let qOut = graph.nodes[q].outputs.first, let d = view.soleConsumer(of: qOut),
            let (x, quantization) = Self.quantizedPair(graph.nodes[d].outputs[0], view), x == y
        else { return false }
        var layer = node.layer
        if var conv = layer as? QuantizedConvolutionLayer {
            conv.output = quantization
            layer = conv
        } else if var matMul = layer as? QuantizedMatMulLayer {
            matMul.output = quantization
            layer = matMul
        }
        graph.nodes[index].layer = layer
        graph.nodes[index].outputs = graph.nodes[d].outputs
        graph.valueTypes[y] = nil
        graph.valueTypes[qOut] = nil
        graph.nodes[index].name += " + " + graph.nodes[q].name + " + " + graph.nodes[d].name
        graph.nodes.remove(at: max(q, d))
        graph.nodes.remove(at: min(q, d))
        return true
    }

    /// The 8-bit weights in the quantized layers' layout (`[M, ...]` for convolutions, `[N, K]` for matMuls) and
    /// one scale per output channel, when the weights are a symmetric dequantization of an int8 or
    /// float8e4m3fn constant.
    private func quantizedWeights(_ node: Node, _ view: PatternView) -> (Tensor, [Float])? {
        let graph = view.graph
        guard let d = view.producers[node.inputs[1]], let dq = graph.nodes[d].layer as? DequantizeLayer,
            dq.blockSize == 0, dq.outputType == nil || dq.outputType == .float32,
            let w = graph.initializers[graph.nodes[d].inputs[0]], w.dtype == .int8 || w.dtype == .float8e4m3fn,
            graph.nodes[d].inputs.count > 1, let s = graph.initializers[graph.nodes[d].inputs[1]],
            s.dtype == .float32, let scales = try? s.doubleValues().map({ Float($0) }),
            scales.allSatisfy({ $0 > 0 && $0.isFinite }), Self.zeroPoint(graph.nodes[d].inputs, graph) == 0
        else { return nil }
        let axis = dq.axis < 0 ? dq.axis + w.rank : dq.axis
        if node.layer is ConvolutionLayer {
            let m = w.shape.first ?? 0
            guard w.rank >= 3, scales.count == 1 || (scales.count == m && axis == 0) else { return nil }
            return (w, scales.count == 1 ? Array(repeating: scales[0], count: m) : scales)
        }
        guard let matMul = node.layer as? MatMulLayer, w.rank == 2 else { return nil }
        let n = matMul.transposeB ? w.shape[0] : w.shape[1]
        guard scales.count == 1 || (scales.count == n && axis == (matMul.transposeB ? 0 : 1)) else { return nil }
        let full = scales.count == 1 ? Array(repeating: scales[0], count: n) : scales
        if matMul.transposeB { return (w, full) }
        let k = w.shape[0]
        let bytes = w.scalars(as: UInt8.self)
        let transposed = (0..<(n * k)).map { i in bytes[(i % k) * n + i / k] }
        guard let t = transposed.withUnsafeBytes({ try? Tensor(dtype: w.dtype, shape: [n, k], rawBytes: $0) })
        else { return nil }
        return (t, full)
    }

    static func scalar(_ inputs: [String], _ index: Int, _ graph: Graph) -> Double? {
        guard inputs.count > index, let t = graph.initializers[inputs[index]], t.count == 1 else { return nil }
        return try? t.scalarDouble()
    }

    /// A zero point of all zeros or absent reads 0; a scalar reads its value; anything else nil (a float8 zero
    /// point is 0 or nothing).
    static func zeroPoint(_ inputs: [String], _ graph: Graph) -> Int? {
        guard inputs.count > 2, !inputs[2].isEmpty else { return 0 }
        guard let t = graph.initializers[inputs[2]] else { return nil }
        if t.dtype == .float8e4m3fn { return t.scalars(as: UInt8.self).allSatisfy { $0 & 0x7F == 0 } ? 0 : nil }
        guard let values = try? t.intValues() else { return nil }
        if values.allSatisfy({ $0 == 0 }) { return 0 }
        return values.count == 1 ? values[0] : nil
    }
}
