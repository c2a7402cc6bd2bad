import KilnIR

/// Replaces multi-head attention written in primitive layers, `MatMul(Q, Kᵀ)·scale (+ mask) → Softmax →
/// MatMul(·, V)`, by one `FusedAttentionLayer`. The reshapes, transposes and static slices that split Q, K and
/// V into heads (from one packed projection or three) and merge the heads of the result are folded into the
/// layer's views, so a backend reads and writes the original tensors in place.
///
/// Runs after scale folding (the scale is the product's alpha), transpose folding (Kᵀ is its transpose flag)
/// and epilogue fusion (a mask add may have become the product's C input). Shapes must be concrete.
public struct AttentionFusion: Pass {
    public let name = "attention-fusion"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        graph.rewriteEachNode { index, graph in fuse(at: index, &graph, context) }
    }

    private func fuse(at index: Int, _ graph: inout Graph, _ context: PassContext) -> Bool {
        guard let softmax = graph.nodes[index].layer as? SoftmaxLayer, softmax.variant == .softmax,
            !softmax.flattenTail, let scoresName = graph.nodes[index].inputs.first
        else { return false }
        let view = PatternView(graph)
        guard let scores = concreteShape(scoresName, graph), scores.count == 3 || scores.count == 4,
            softmax.axis == -1 || softmax.axis == scores.count - 1,
            let product = scoreProduct(scoresName, view),
            let pvIndex = view.soleConsumer(of: graph.nodes[index].outputs[0]),
            let pv = graph.nodes[pvIndex].layer as? MatMulLayer, graph.nodes[pvIndex].inputs.count == 2,
            graph.nodes[pvIndex].inputs[0] == graph.nodes[index].outputs[0], !pv.transposeA, !pv.transposeB,
            pv.alpha == 1, pv.epilogue.isEmpty,
            isFusibleFloat(graph.type(of: scoresName)?.tensorType?.dtype)
        else { return false }
        let node = graph.nodes[index].name
        func reject(_ reason: String) -> Bool {
            context.rejected?(node, "attention: \(reason)")
            return false
        }
        let (batch, heads) = scores.count == 4 ? (scores[0], scores[1]) : (scores[0], 1)
        let (sq, sk) = (scores[scores.count - 2], scores[scores.count - 1])
        let qk = graph.nodes[product.node]
        guard let qk4 = qk.layer as? MatMulLayer,
            let q = operand(qk.inputs[0], batch: [batch, heads], swapLast: false, view),
            let k = operand(qk.inputs[1], batch: [batch, heads], swapLast: !qk4.transposeB, view),
            let v = operand(graph.nodes[pvIndex].inputs[1], batch: [batch, heads], swapLast: false, view)
        else { return reject("Q, K or V is not a strided view of a stored tensor") }
        let d = q.view.shape[3]
        let dv = v.view.shape[3]
        guard q.view.shape[2] == sq, k.view.shape[2] == sk, k.view.shape[3] == d, v.view.shape[2] == sk else {
            return reject("Q, K and V sizes do not agree with the scores")
        }
        if let mask = product.mask {
            guard let shape = concreteShape(mask, graph), scores.count == 4 || shape.count <= 2,
                graph.type(of: mask)?.tensorType?.dtype == graph.type(of: scoresName)?.tensorType?.dtype
            else { return reject("the mask does not broadcast to [batch, heads, queries, keys]") }
        }
        guard let result = resultView(of: graph.nodes[pvIndex].outputs[0], pvIndex, batch: batch, heads: heads, view)
        else { return reject("the result is not written through reshapes and transposes") }
        let layer = FusedAttentionLayer(
            batch: batch, heads: heads, queryLength: sq, keyLength: sk, headSize: d, valueHeadSize: dv,
            query: q.view.attentionView, key: k.view.attentionView, value: v.view.attentionView,
            output: result.view.attentionView, outputShape: result.shape, scale: qk4.alpha,
            zeroMaskedRows: softmax.zeroNaN)
        let covered = q.nodes.union(k.nodes).union(v.nodes).union(product.nodes).union(result.nodes)
            .union([index, pvIndex])
        graph.replace(
            covering: covered, root: result.root, with: layer,
            inputs: [q.base, k.base, v.base] + (product.mask.map { [$0] } ?? []))
        return true
    }

    /// The Q·Kᵀ product feeding the softmax, with its mask (C input or a following add) and the nodes matched.
    private func scoreProduct(_ scores: String, _ view: PatternView) -> (node: Int, mask: String?, nodes: Set<Int>)? {
        guard let p = view.internalProducer(of: scores) else { return nil }
        let node = view.graph.nodes[p]
        if let mm = node.layer as? MatMulLayer {
            guard !mm.transposeA, mm.epilogue.isEmpty,
                node.inputs.count == 2 || (node.inputs.count == 3 && mm.beta == 1)
            else { return nil }
            return (p, node.inputs.count == 3 ? node.inputs[2] : nil, [p])
        }
        guard let add = node.layer as? BinaryLayer, add.op == .add, node.inputs.count == 2 else { return nil }
        for (side, other) in [(0, 1), (1, 0)] {
            if let inner = scoreProduct(node.inputs[side], view), inner.mask == nil {
                return (inner.node, node.inputs[other], inner.nodes.union([p]))
            }
        }
        return nil
    }

    /// A product operand as a [batch, heads, rows, columns] view of the tensor it is stored in (columns and rows
    /// swapped when `swapLast`), looking through the shuffles that produce it.
    private func operand(
        _ value: String, batch: [Int], swapLast: Bool, _ view: PatternView
    )
        -> (base: String, view: StridedView, nodes: Set<Int>)?
    {
        guard let source = storedSource(of: value, view) else { return nil }
        var v = source.view
        if swapLast {
            let r = v.shape.count
            guard r >= 2 else { return nil }
            v = v.transposed(Array(0..<(r - 2)) + [r - 1, r - 2])
        }
        guard let logical = v.asHeads(batch: batch) else { return nil }
        return (source.base, logical, source.nodes)
    }

    /// The stored tensor `value` is a view of, through the longest chain of reshapes, transposes, static slices
    /// and constant-index gathers that composes into one view. The chain's nodes whose results only the chain
    /// reads are returned for removal; the others stay for their other readers.
    private func storedSource(
        of value: String, _ view: PatternView
    ) -> (base: String, view: StridedView, nodes: Set<Int>)? {
        let graph = view.graph
        var chain: [Int] = []
        var current = value
        while chain.count < 12, let p = view.producers[current], StridedView.isView(graph.nodes[p], in: graph) {
            chain.append(p)
            current = graph.nodes[p].inputs[0]
        }
        return longestPrefix(of: chain) { nodes in
            let base = nodes.last.map { graph.nodes[$0].inputs[0] } ?? value
            guard let shape = concreteShape(base, graph) else { return nil }
            // From the base outward, each step to the node's result.
            let composed = nodes.reversed().reduce(StridedView(dense: shape) as StridedView?) { v, p in
                concreteShape(graph.nodes[p].outputs[0], graph).flatMap {
                    v?.through(graph.nodes[p], giving: $0, in: graph)
                }
            }
            guard let composed else { return nil }
            // Removable: the nodes up to the first result that something outside the chain also reads.
            var removable: Set<Int> = []
            var result = value
            for p in nodes {
                guard view.internalProducer(of: result) == p else { break }
                removable.insert(p)
                result = graph.nodes[p].inputs[0]
            }
            return (base, composed, removable)
        }
    }

    /// Where the product's result, of logical shape [batch, heads, queries, values], lands in the tensor that the
    /// reshapes and transposes after it (each read once) produce.
    private func resultView(
        of value: String, _ producer: Int, batch: Int, heads: Int, _ view: PatternView
    )
        -> (view: StridedView, shape: [Int], root: Int, nodes: Set<Int>)?
    {
        let graph = view.graph
        var chain: [Int] = []
        var current = value
        while chain.count < 12, let c = view.soleConsumer(of: current),
            graph.nodes[c].layer is ReshapeLayer || graph.nodes[c].layer is TransposeLayer,
            graph.nodes[c].inputs.first == current
        {
            chain.append(c)
            current = graph.nodes[c].outputs[0]
        }
        return longestPrefix(of: chain) { nodes in
            let last = nodes.last.map { graph.nodes[$0].outputs[0] } ?? value
            guard let shape = concreteShape(last, graph) else { return nil }
            // From the stored result inward, each step back to the node's input.
            let composed = nodes.reversed().reduce(StridedView(dense: shape) as StridedView?) { v, p in
                concreteShape(graph.nodes[p].inputs[0], graph).flatMap { v?.before(graph.nodes[p], input: $0) }
            }
            guard let heads4 = composed?.asHeads(batch: [batch, heads]) else { return nil }
            return (heads4, shape, nodes.last ?? producer, Set(nodes))
        }
    }

    /// `make`'s result for the longest prefix of `chain` (nodes nearest the product first) it accepts.
    private func longestPrefix<T>(of chain: [Int], _ make: ([Int]) -> T?) -> T? {
        for length in stride(from: chain.count, through: 0, by: -1) {
            if let result = make(Array(chain.prefix(length))) { return result }
        }
        return nil
    }

    private func concreteShape(_ value: String, _ graph: Graph) -> [Int]? {
        graph.type(of: value)?.tensorType?.concreteShape
    }
}

extension StridedView {
    /// This view of a rank-3 ([batch, rows, columns]) or rank-4 ([batch, heads, rows, columns]) operand as
    /// rank 4 against the product's leading axes `batch` ([batch, heads]): a missing heads axis or a
    /// broadcast (size-1) axis reads with stride 0.
    func asHeads(batch: [Int]) -> StridedView? {
        guard var t = strides else { return nil }
        var s = shape
        if s.count == 3 {
            guard batch[1] == 1 else { return nil }
            s.insert(1, at: 1)
            t.insert(0, at: 1)
        }
        guard s.count == 4 else { return nil }
        for a in 0..<2 {
            if s[a] == batch[a] { continue }
            guard s[a] == 1 else { return nil }
            s[a] = batch[a]
            t[a] = 0
        }
        return StridedView(shape: s, strides: t, offset: offset)
    }

    /// The view as the fused layer stores it (`asHeads` has made every axis one stride).
    var attentionView: FusedAttentionLayer.View {
        FusedAttentionLayer.View(offset: offset, strides: strides ?? [])
    }
}
