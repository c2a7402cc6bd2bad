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
        var chain: [Int] = []
        var current = value
        while chain.count < 12, let p = view.producers[current], isShuffle(view.graph.nodes[p], view.graph),
            let input = view.graph.nodes[p].inputs.first
        {
            chain.append(p)
            current = input
        }
        for length in stride(from: chain.count, through: 0, by: -1) {
            let nodes = Array(chain.prefix(length))
            let base = length == 0 ? value : view.graph.nodes[nodes[length - 1]].inputs[0]
            guard let shape = concreteShape(base, view.graph) else { continue }
            var v: StridedView? = StridedView(dense: shape)
            for p in nodes.reversed() {
                guard let current = v, let out = concreteShape(view.graph.nodes[p].outputs[0], view.graph) else {
                    v = nil
                    break
                }
                v = apply(view.graph.nodes[p], to: current, giving: out, view.graph)
            }
            guard let v else { continue }
            // Removable: the nodes up to the first result that something outside the chain also reads.
            var removable: Set<Int> = []
            var result = value
            for p in nodes {
                guard view.internalProducer(of: result) == p else { break }
                removable.insert(p)
                result = view.graph.nodes[p].inputs[0]
            }
            return (base, v, removable)
        }
        return nil
    }

    /// Where the product's result, of logical shape [batch, heads, queries, values], lands in the tensor that the
    /// reshapes and transposes after it (each read once) produce.
    private func resultView(
        of value: String, _ producer: Int, batch: Int, heads: Int, _ view: PatternView
    )
        -> (view: StridedView, shape: [Int], root: Int, nodes: Set<Int>)?
    {
        var chain: [Int] = []
        var current = value
        while chain.count < 12, let c = view.soleConsumer(of: current),
            view.graph.nodes[c].layer is ReshapeLayer || view.graph.nodes[c].layer is TransposeLayer,
            view.graph.nodes[c].inputs.first == current, let next = view.graph.nodes[c].outputs.first
        {
            chain.append(c)
            current = next
        }
        for length in stride(from: chain.count, through: 0, by: -1) {
            let nodes = Array(chain.prefix(length))
            let last = length == 0 ? value : view.graph.nodes[nodes[length - 1]].outputs[0]
            guard let shape = concreteShape(last, view.graph) else { continue }
            var v: StridedView? = StridedView(dense: shape)
            for p in nodes.reversed() {
                guard let current = v, let input = concreteShape(view.graph.nodes[p].inputs[0], view.graph) else {
                    v = nil
                    break
                }
                if let t = view.graph.nodes[p].layer as? TransposeLayer {
                    v = (try? t.permutation(rank: input.count)).map { current.untransposed($0) }
                } else {
                    v = current.reshaped(input)
                }
            }
            if let v, let heads4 = v.asHeads(batch: [batch, heads]) {
                return (heads4, shape, nodes.last ?? producer, Set(nodes))
            }
        }
        return nil
    }

    private func isShuffle(_ node: Node, _ graph: Graph) -> Bool {
        if let slice = node.layer as? SliceLayer { return slice.isStatic }
        if node.layer is GatherLayer { return node.inputs.count == 2 && graph.initializers[node.inputs[1]]?.count == 1 }
        return node.layer is ReshapeLayer || node.layer is TransposeLayer
    }

    /// `view` after one shuffle node whose result has shape `out`.
    private func apply(_ node: Node, to view: StridedView, giving out: [Int], _ graph: Graph) -> StridedView? {
        let layer = node.layer
        if let gather = layer as? GatherLayer {
            let rank = view.shape.count
            guard let index = graph.initializers[node.inputs[1]], var i = try? index.intValues().first,
                let axis = try? ShapeAxes.normalize(gather.axis, rank: rank)
            else { return nil }
            if i < 0 { i += view.shape[axis] }
            return view.selecting(i, of: axis, keep: index.rank > 0)
        }
        if let t = layer as? TransposeLayer {
            guard let perm = try? t.permutation(rank: view.shape.count) else { return nil }
            return view.transposed(perm)
        }
        if let s = layer as? SliceLayer {
            guard let starts = s.starts, let ends = s.ends,
                let ranges = try? SliceLayer.resolve(
                    shape: view.shape, starts: starts, ends: ends, axes: s.axes, steps: s.steps)
            else { return nil }
            return view.sliced(ranges)
        }
        return view.reshaped(out)
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
