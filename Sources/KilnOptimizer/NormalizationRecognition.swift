import KilnIR

/// Recognizes layer normalization and RMS normalization written out in primitive layers (exports before
/// opset 17, TensorFlow graphs, hand-written RMSNorm) and replaces each by one normalization layer, which the
/// CPU and CUDA backends run as one pass over each row:
///
/// - layer norm: `d = x - mean(x)`, `y = d / sqrt(mean(d²) + ε) [· γ] [+ β]`;
/// - RMS norm: `y = x / sqrt(mean(x²) + ε) [· γ]`;
///
/// with the means (ReduceMean, keepdims) over the same trailing axes, the square as `Pow(·, 2)` or `d · d`, the
/// division as `Div` or a multiplication by `Reciprocal`, and γ, β constants of the trailing axes' shape. Every
/// intermediate value must be read only inside the pattern.
public struct NormalizationRecognition: Pass {
    public let name = "normalization-recognition"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var changed = false
        while let match = findMatch(graph) {
            try replace(match, &graph)
            changed = true
        }
        return changed
    }

    struct Match {
        var input: String
        var axis: Int
        var epsilon: Float
        var centered: Bool
        var scale: String?
        var bias: String?
        var trailing: [Int]
        var dtype: DType
        var nodes: Set<Int>
        var root: Int
    }

    private func findMatch(_ graph: Graph) -> Match? {
        let view = PatternView(graph)
        for index in graph.nodes.indices {
            if let m = match(varianceAt: index, view) { return m }
        }
        return nil
    }

    /// The trailing axes a keepdims ReduceMean at `index` averages over, with its input; nil otherwise.
    private func trailingMean(_ index: Int, _ view: PatternView) -> (input: String, first: Int, rank: Int)? {
        let node = view.graph.nodes[index]
        guard let reduce = node.layer as? ReduceLayer, reduce.op == .mean, reduce.keepDims,
            node.outputs.count == 1, let input = node.inputs.first,
            let rank = view.graph.type(of: input)?.tensorType?.rank, rank > 0
        else { return nil }
        let given = reduce.axes ?? (node.inputs.count > 1 ? view.intConstant(node.inputs[1]) : nil)
        guard let given, let axes = try? reduce.reducedAxes(rank: rank, given: given), let first = axes.first,
            axes == Array(first..<rank)
        else { return nil }
        return (input, first, rank)
    }

    /// Starts at the mean of the squares (the variance, or the mean square for RMS norm).
    private func match(varianceAt index: Int, _ view: PatternView) -> Match? {
        guard let variance = trailingMean(index, view), let s = view.internalProducer(of: variance.input),
            let base = squareBase(s, view)
        else { return nil }
        var nodes: Set<Int> = [index, s]
        // The value squared is either x - mean(x) (layer norm) or x itself (RMS norm).
        var x = base
        var centered = false
        if let d = view.producers[base], let sub = view.graph.nodes[d].layer as? BinaryLayer, sub.op == .sub,
            view.graph.nodes[d].inputs.count == 2, let m = view.producers[view.graph.nodes[d].inputs[1]],
            let mean = trailingMean(m, view), mean.input == view.graph.nodes[d].inputs[0],
            mean.first == variance.first, view.uses[view.graph.nodes[m].outputs[0]] == 1,
            view.readers(of: base).count == 2, !view.isGraphOutput(base)
        {
            x = mean.input
            centered = true
            nodes.formUnion([d, m])
        }
        guard let dtype = view.graph.type(of: x)?.tensorType?.dtype, dtype.isFloatingPoint,
            let shape = view.graph.type(of: x)?.tensorType?.shape, shape.count == variance.rank
        else { return nil }
        // variance + ε -> sqrt -> base / std (or base · reciprocal(std))
        let v = view.graph.nodes[index].outputs[0]
        guard let a = view.soleConsumer(of: v), let add = view.graph.nodes[a].layer as? BinaryLayer, add.op == .add,
            let (eps, other) = view.constantAndOther(view.graph.nodes[a].inputs), other == v,
            let epsilon = view.scalarValue(eps),
            let q = view.soleConsumer(of: view.graph.nodes[a].outputs[0]),
            let sqrt = view.graph.nodes[q].layer as? UnaryLayer, sqrt.op == .sqrt
        else { return nil }
        nodes.formUnion([a, q])
        let std = view.graph.nodes[q].outputs[0]
        guard let c = view.soleConsumer(of: std) else { return nil }
        var normalized: Int
        if let div = view.graph.nodes[c].layer as? BinaryLayer, div.op == .div,
            view.graph.nodes[c].inputs == [base, std]
        {
            normalized = c
        } else if let rec = view.graph.nodes[c].layer as? UnaryLayer, rec.op == .reciprocal,
            let mIndex = view.soleConsumer(of: view.graph.nodes[c].outputs[0]),
            let mul = view.graph.nodes[mIndex].layer as? BinaryLayer, mul.op == .mul,
            Set(view.graph.nodes[mIndex].inputs) == [base, view.graph.nodes[c].outputs[0]]
        {
            nodes.insert(c)
            normalized = mIndex
        } else {
            return nil
        }
        nodes.insert(normalized)
        let trailing = shape[variance.first...].compactMap(\.value)
        guard trailing.count == variance.rank - variance.first else { return nil }
        // Optional · γ and + β (constants that broadcast over the trailing axes only).
        var root = normalized
        /// The constant the root's sole consumer combines it with by `op`, making that consumer the new root.
        func absorb(_ op: BinaryOp) -> String? {
            let value = view.graph.nodes[root].outputs[0]
            guard let next = view.soleConsumer(of: value), let binary = view.graph.nodes[next].layer as? BinaryLayer,
                binary.op == op,
                let constant = trailingConstant(view.graph.nodes[next].inputs, excluding: value, trailing, dtype, view)
            else { return nil }
            root = next
            nodes.insert(next)
            return constant
        }
        let scale = absorb(.mul)
        let bias = centered && scale != nil ? absorb(.add) : nil
        return Match(
            input: x, axis: variance.first - variance.rank, epsilon: Float(epsilon), centered: centered,
            scale: scale, bias: bias, trailing: trailing, dtype: dtype, nodes: nodes, root: root)
    }

    /// For `Pow(b, 2)` or `Mul(b, b)` at `index`: b.
    private func squareBase(_ index: Int, _ view: PatternView) -> String? {
        let node = view.graph.nodes[index]
        guard let binary = node.layer as? BinaryLayer, node.inputs.count == 2 else { return nil }
        if binary.op == .mul, node.inputs[0] == node.inputs[1] { return node.inputs[0] }
        if binary.op == .pow, view.isConstant(node.inputs[1], 2) { return node.inputs[0] }
        return nil
    }

    /// The operand of a two-input node other than `value`, when it is a constant of the trailing shape (or a
    /// suffix of it padded with ones) and dtype.
    private func trailingConstant(
        _ inputs: [String], excluding value: String, _ trailing: [Int], _ dtype: DType, _ view: PatternView
    ) -> String? {
        guard inputs.count == 2, inputs.filter({ $0 == value }).count == 1,
            let other = inputs.first(where: { $0 != value }), let t = view.graph.initializers[other], t.dtype == dtype
        else { return nil }
        let dims = Array(t.shape.drop { $0 == 1 })
        guard dims.count <= trailing.count, Array(trailing.suffix(dims.count)) == dims,
            t.count == trailing.reduce(1, *) || dims.isEmpty
        else { return nil }
        return other
    }

    private func replace(_ match: Match, _ graph: inout Graph) throws {
        let count = match.trailing.reduce(1, *)
        let output = graph.nodes[match.root].outputs[0]
        /// γ or β as a row of the trailing shape: the constant itself, or `fill` (or its one value) repeated.
        func row(_ name: String?, fill: Double, suffix: String) throws -> String {
            let given = name.flatMap { graph.initializers[$0] }
            if let given, given.count == count {
                return graph.addConstant(try given.reshaped(match.trailing), named: output + suffix)
            }
            let value = try given?.doubleValues().first ?? fill
            let tensor = try Tensor(shape: match.trailing, scalars: [Double](repeating: value, count: count))
                .cast(to: match.dtype)
            return graph.addConstant(tensor, named: output + suffix)
        }
        var inputs = [match.input, try row(match.scale, fill: 1, suffix: ".scale")]
        if match.centered { inputs.append(try row(match.bias, fill: 0, suffix: ".bias")) }
        let layer = NormalizationLayer(
            method: match.centered ? .layer(axis: match.axis) : .rms(axis: match.axis), epsilon: match.epsilon)
        graph.replace(covering: match.nodes, root: match.root, with: layer, inputs: inputs)
    }
}

extension PatternView {
    /// The nodes that read `value`.
    func readers(of value: String) -> [Int] {
        graph.nodes.indices.filter { graph.nodes[$0].inputs.contains(value) }
    }

    func isGraphOutput(_ value: String) -> Bool { graph.outputs.contains { $0.name == value } }

    /// The value of a one-element floating-point constant.
    func scalarValue(_ value: String) -> Double? {
        guard let t = graph.initializers[value], t.count == 1, t.dtype.isFloatingPoint else { return nil }
        return try? t.doubleValues().first
    }

    /// An integer constant's values (ReduceMean's axes input).
    func intConstant(_ value: String) -> [Int]? {
        guard let t = graph.initializers[value], !t.dtype.isFloatingPoint else { return nil }
        return try? t.doubleValues().map { Int($0) }
    }
}
