import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnOptimizer

/// Multi-head attention in primitive layers (the exports of BERT and of torch's MultiheadAttention) becomes one
/// fused attention layer with the head shuffles folded into views, and computes what the primitives compute
/// (CPU, seeded random inputs).
@Suite struct AttentionFusionTests {
    let batch = 2
    let seq = 5
    let heads = 3
    let head = 4
    var embed: Int { heads * head }

    func node(_ name: String, _ layer: any Layer, _ inputs: [String], _ output: String) -> Node {
        Node(name: name, layer: layer, inputs: inputs, outputs: [output])
    }

    func graph(_ inputs: [(String, [Int])], _ nodes: [Node], _ initializers: [String: Tensor]) -> Graph {
        var g = Graph(
            name: "g", inputs: inputs.map { GraphValue(name: $0.0, type: FusionGraphs.f32($0.1)) },
            outputs: [GraphValue(name: "y", type: nil)], initializers: initializers, nodes: nodes)
        try? g.inferTypes()
        return g
    }

    func reshape(_ shape: [Int]) -> ReshapeLayer { ReshapeLayer(.reshape(shape: shape, allowZero: false)) }

    /// BERT's encoder attention: three projections of x [B, S, E], each split into heads
    /// ([B, S, H, D] → [B, H, S, D]; K straight to [B, H, D, S]), scores scaled by a constant, a [B, 1, 1, S]
    /// additive mask with a fully masked batch row, softmax with the NaN guard, and the heads merged back.
    func bertGraph(seed: UInt64) -> (Graph, [String: Tensor]) {
        var rng = SeededGenerator(seed: seed)
        var initializers: [String: Tensor] = [
            "scale": Tensor(shape: [], scalars: [Float(1 / Float(head).squareRoot())]),
            "zero": Tensor(shape: [], scalars: [Float(0)]),
        ]
        for p in ["q", "k", "v"] {
            initializers["w\(p)"] = .random([embed, embed], using: &rng)
            initializers["b\(p)"] = .random([embed], using: &rng)
        }
        // Batch 0 sees its first 3 keys; batch 1 sees none (every row fully masked).
        var mask = [Float](repeating: -.infinity, count: batch * seq)
        for j in 0..<3 { mask[j] = 0 }
        initializers["mask"] = Tensor(shape: [batch, 1, 1, seq], scalars: mask)
        var nodes: [Node] = []
        for p in ["q", "k", "v"] {
            nodes += [
                node("\(p)_mm", MatMulLayer(), ["x", "w\(p)"], "\(p)_lin"),
                node("\(p)_bias", BinaryLayer(.add), ["\(p)_lin", "b\(p)"], "\(p)_proj"),
                node("\(p)_split", reshape([batch, seq, heads, head]), ["\(p)_proj"], "\(p)_4"),
                node(
                    "\(p)_heads", TransposeLayer(perm: p == "k" ? [0, 2, 3, 1] : [0, 2, 1, 3]), ["\(p)_4"],
                    "\(p)_h"),
            ]
        }
        nodes += [
            node("scores", MatMulLayer(), ["q_h", "k_h"], "s"),
            node("scaled", BinaryLayer(.mul), ["s", "scale"], "ss"),
            node("masked", BinaryLayer(.add), ["ss", "mask"], "sm"),
            node("softmax", SoftmaxLayer(variant: .softmax, axis: -1), ["sm"], "p"),
            node("isnan", UnaryLayer(.isNaN), ["p"], "nan"),
            node("guard", SelectLayer(), ["nan", "zero", "p"], "pg"),
            node("context", MatMulLayer(), ["pg", "v_h"], "o"),
            node("merge_t", TransposeLayer(perm: [0, 2, 1, 3]), ["o"], "ot"),
            node("merge", reshape([batch, seq, embed]), ["ot"], "y"),
        ]
        let g = graph([("x", [batch, seq, embed])], nodes, initializers)
        return (g, ["x": .random([batch, seq, embed], using: &rng)])
    }

    @Test func bertAttentionIsOneLayerAfterOnePackedProjection() throws {
        let (g, feeds) = bertGraph(seed: 61)
        let run = try OptimizedVersusPlain(g, feeds)
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [MatMulLayer.kind, FusedAttentionLayer.kind])
        let layer = try #require(run.optimized.nodes.last?.layer as? FusedAttentionLayer)
        #expect(layer.zeroMaskedRows && layer.heads == heads && layer.queryLength == seq && layer.headSize == head)
        // Q, K and V are column blocks of the packed [B, S, 3E] product; the result goes to [B, S, E] in place.
        #expect(layer.query == .init(offset: 0, strides: [seq * 3 * embed, head, 3 * embed, 1]))
        #expect(layer.key.offset == embed && layer.value.offset == 2 * embed)
        #expect(layer.output == .init(offset: 0, strides: [seq * embed, head, embed, 1]))
        // The fully masked batch row gives zeros, as the guard after the softmax does.
        guard case .tensor(let y) = run.outputs[0].actual else { throw KilnError.runtime("no tensor") }
        let values = y.scalars(as: Float.self)
        #expect(values[(seq * embed)...].allSatisfy { $0 == 0 })
    }

    /// torch.nn.MultiheadAttention in a batch-first model (ViT): x [B, S, E] transposed to sequence-first,
    /// one packed in-projection made [3, S, B, E] and indexed for Q, K and V, heads as [S, B·H, D] → [B·H, S, D]
    /// → [B, H, S, D], the result permuted to [S, B, H, D] and flattened to [S·B, E] for the out-projection,
    /// which is transposed back to [B, S, E] and added to x. The boundary transposes move across the
    /// projections into the attention's views, and the residual add joins the out-projection.
    @Test func sequenceFirstPackedAttention() throws {
        var rng = SeededGenerator(seed: 62)
        let initializers: [String: Tensor] = [
            "w_in": .random([embed, 3 * embed], using: &rng), "b_in": .random([3 * embed], using: &rng),
            "w_out": .random([embed, embed], using: &rng), "i0": Tensor(shape: [], scalars: [Int64(0)]),
            "i1": Tensor(shape: [], scalars: [Int64(1)]), "i2": Tensor(shape: [], scalars: [Int64(-1)]),
        ]
        var nodes = [
            node("seq_first", TransposeLayer(perm: [1, 0, 2]), ["x"], "x_sb"),
            node("in_mm", MatMulLayer(), ["x_sb", "w_in"], "lin"),
            node("in_bias", BinaryLayer(.add), ["lin", "b_in"], "packed"),
            node("unflatten", reshape([seq, batch, 3, embed]), ["packed"], "packed4"),
            node("qkv_first", TransposeLayer(perm: [2, 0, 1, 3]), ["packed4"], "qkv"),
        ]
        for (i, p) in ["q", "k", "v"].enumerated() {
            nodes += [
                node("\(p)_pick", GatherLayer(axis: 0), ["qkv", "i\(i)"], "\(p)_sb"),
                node("\(p)_view", reshape([seq, batch * heads, head]), ["\(p)_sb"], "\(p)_3"),
                node("\(p)_t", TransposeLayer(perm: [1, 0, 2]), ["\(p)_3"], "\(p)_bh"),
                node("\(p)_4", reshape([batch, heads, seq, head]), ["\(p)_bh"], "\(p)_h"),
            ]
        }
        nodes += [
            node("kt", TransposeLayer(perm: [0, 1, 3, 2]), ["k_h"], "k_t"),
            node("scores", MatMulLayer(alpha: 0.5), ["q_h", "k_t"], "s"),
            node("softmax", SoftmaxLayer(variant: .softmax, axis: 3), ["s"], "p"),
            node("context", MatMulLayer(), ["p", "v_h"], "o"),
            node("permute", TransposeLayer(perm: [2, 0, 1, 3]), ["o"], "o_sb"),
            node("flatten", reshape([seq * batch, embed]), ["o_sb"], "o_2"),
            node("out_mm", MatMulLayer(), ["o_2", "w_out"], "proj"),
            node("unflatten_out", reshape([seq, batch, embed]), ["proj"], "proj_sb"),
            node("batch_first", TransposeLayer(perm: [1, 0, 2]), ["proj_sb"], "proj_bs"),
            node("residual", BinaryLayer(.add), ["proj_bs", "x"], "y"),
        ]
        let g = graph([("x", [batch, seq, embed])], nodes, initializers)
        let run = try OptimizedVersusPlain(g, ["x": .random([batch, seq, embed], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [MatMulLayer.kind, FusedAttentionLayer.kind, MatMulLayer.kind])
        let layer = try #require(run.optimized.nodes[1].layer as? FusedAttentionLayer)
        // Read from the batch-first packed product [B, S, 3E]; written batch-first [B, S, E].
        #expect(layer.query == .init(offset: 0, strides: [seq * 3 * embed, head, 3 * embed, 1]))
        #expect(layer.output == .init(offset: 0, strides: [seq * embed, head, embed, 1]))
        // The residual x is the out-projection's C input.
        #expect(run.optimized.nodes[2].inputs.last == "x")
        #expect(layer.key.offset == embed && layer.value.offset == 2 * embed)
        #expect(layer.scale == 0.5 && !layer.zeroMaskedRows)
    }

    /// Heads already separate ([N, S, D] graph inputs), K and V of a different length than Q, no scale.
    @Test func threeDimensionalOperandsFromGraphInputs() throws {
        var rng = SeededGenerator(seed: 63)
        let g = graph(
            [("q", [6, 5, 4]), ("k", [6, 7, 4]), ("v", [6, 7, 3])],
            [
                node("kt", TransposeLayer(perm: [0, 2, 1]), ["k"], "k_t"),
                node("scores", MatMulLayer(), ["q", "k_t"], "s"),
                node("softmax", SoftmaxLayer(variant: .softmax, axis: -1), ["s"], "p"),
                node("context", MatMulLayer(), ["p", "v"], "y"),
            ], [:])
        let feeds: [String: Tensor] = [
            "q": .random([6, 5, 4], using: &rng), "k": .random([6, 7, 4], using: &rng),
            "v": .random([6, 7, 3], using: &rng),
        ]
        let run = try OptimizedVersusPlain(g, feeds)
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [FusedAttentionLayer.kind])
        let layer = try #require(run.optimized.nodes.first?.layer as? FusedAttentionLayer)
        #expect(layer.batch == 6 && layer.heads == 1 && layer.keyLength == 7 && layer.valueHeadSize == 3)
    }

    /// A softmax whose probabilities are also a graph output must stay: the fused layer never stores them.
    @Test func probabilitiesReadElsewhereAreNotFused() throws {
        var g = graph(
            [("q", [2, 3, 4]), ("k", [2, 3, 4]), ("v", [2, 3, 4])],
            [
                node("scores", MatMulLayer(transposeB: true), ["q", "k"], "s"),
                node("softmax", SoftmaxLayer(variant: .softmax, axis: -1), ["s"], "p"),
                node("context", MatMulLayer(), ["p", "v"], "y"),
            ], [:])
        g.outputs.append(GraphValue(name: "p", type: nil))
        try g.inferTypes()
        try Pipeline([AttentionFusion()]).run(&g, FusionGraphs.noEvaluation)
        #expect(!g.nodes.contains { $0.kind == FusedAttentionLayer.kind })
    }

    /// Symbolic shapes leave the primitives alone (views need concrete strides).
    @Test func symbolicShapesAreLeftAlone() throws {
        var g = Graph(
            name: "g",
            inputs: ["q", "k", "v"].map {
                GraphValue(name: $0, type: .tensor(TensorType(.float32, [.symbol("n"), .value(3), .value(4)])))
            },
            outputs: [GraphValue(name: "y", type: nil)], initializers: [:],
            nodes: [
                node("scores", MatMulLayer(transposeB: true), ["q", "k"], "s"),
                node("softmax", SoftmaxLayer(variant: .softmax, axis: -1), ["s"], "p"),
                node("context", MatMulLayer(), ["p", "v"], "y"),
            ])
        try g.inferTypes()
        try Pipeline([AttentionFusion()]).run(&g, FusionGraphs.noEvaluation)
        #expect(g.nodes.count == 3)
    }
}

/// Sibling products of one input with constant weights become one wider product and slices.
@Suite struct HorizontalFusionTests {
    func node(_ name: String, _ layer: any Layer, _ inputs: [String], _ output: String) -> Node {
        Node(name: name, layer: layer, inputs: inputs, outputs: [output])
    }

    @Test func siblingProductsShareOneLaunch() throws {
        var rng = SeededGenerator(seed: 64)
        let initializers: [String: Tensor] = [
            "w1": .random([6, 4], using: &rng), "w2": .random([6, 5], using: &rng),
            "w3": .random([6, 3], using: &rng), "b1": .random([4], using: &rng), "b2": .random([5], using: &rng),
        ]
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([2, 3, 6]))],
            outputs: ["y1", "y2", "y3"].map { GraphValue(name: $0, type: nil) }, initializers: initializers,
            nodes: [
                node("p1", MatMulLayer(), ["x", "w1", "b1"], "y1"),
                node("p2", MatMulLayer(), ["x", "w2", "b2"], "y2"),
                // No bias: a different signature, left alone.
                node("p3", MatMulLayer(), ["x", "w3"], "y3"),
            ])
        try g.inferTypes()
        let run = try OptimizedVersusPlain(g, ["x": .random([2, 3, 6], using: &rng)])
        run.expectSameOutputs()
        #expect(
            run.optimized.nodes.map(\.kind) == [MatMulLayer.kind, SliceLayer.kind, SliceLayer.kind, MatMulLayer.kind])
        #expect(run.optimized.nodes.filter { $0.kind == MatMulLayer.kind }.count == 2)
    }

    /// An Inception block's shape: three ReLU'd 1x1 convolutions and a 3x3 one read x; the 1x1s with a bias
    /// become one convolution over their joined output channels and a channel slice each, the 3x3 (another
    /// window) and a 1x1 without ReLU (another epilogue) stay as they are.
    static func inceptionBlock(batch: Int) throws -> Graph {
        var rng = SeededGenerator(seed: 71)
        var n = NetworkBuilder(name: "inception")
        let x = n.addInput("x", .float32, [.value(batch), 6, 5, 5])
        func constant(_ name: String, _ shape: [Int]) -> NetworkBuilder.Value {
            n.addConstant(name, .random(shape, in: -0.5...0.5, using: &rng))
        }
        var outputs: [NetworkBuilder.Value] = []
        for (i, channels) in [4, 3, 5].enumerated() {
            outputs.append(
                try n.relu(
                    try n.convolution(
                        x, weights: constant("w\(i)", [channels, 6, 1, 1]), bias: constant("b\(i)", [channels]))))
        }
        outputs.append(
            try n.convolution(x, weights: constant("w3", [2, 6, 3, 3]), bias: constant("b3", [2]), pads: [1, 1, 1, 1]))
        outputs.append(try n.convolution(x, weights: constant("w4", [3, 6, 1, 1]), bias: constant("b4", [3])))
        // Something reads each slice: a 3x3 convolution behind the second, as Inception's reduce layers.
        outputs[1] = try n.convolution(outputs[1], weights: constant("w5", [4, 3, 3, 3]), pads: [1, 1, 1, 1])
        try n.markOutput(try n.add(ConcatLayer(axis: 1), outputs, name: "y")[0], as: "y")
        return try n.build()
    }

    @Test func siblingConvolutionsShareOneLaunch() throws {
        var rng = SeededGenerator(seed: 72)
        let run = try OptimizedVersusPlain(
            try Self.inceptionBlock(batch: 2), ["x": .random([2, 6, 5, 5], using: &rng)])
        run.expectSameOutputs()
        let convolutions = run.optimized.nodes.compactMap { $0.layer as? ConvolutionLayer }
        #expect(convolutions.count == 4, "\(run.optimized.textForm())")
        let wide = try #require(run.optimized.nodes.first { $0.name.contains(" + ") && $0.layer is ConvolutionLayer })
        #expect(run.optimized.initializers[wide.inputs[1]]?.shape == [12, 6, 1, 1])
        #expect(run.optimized.type(of: wide.outputs[0])?.tensorType?.shape == [2, 12, 5, 5])
        let slices = run.optimized.nodes.compactMap { $0.layer as? SliceLayer }
        #expect(slices.map(\.starts) == [[0], [4], [7]] && slices.allSatisfy { $0.axes == [1] })
    }

    /// Siblings left out are reported with the reason (`kiln inspect --verbose`): ResNet's first 1x1
    /// convolution (ReLU) beside its downsample (none), and a 3x3 beside both.
    @Test func siblingsLeftOutAreReported() throws {
        var rng = SeededGenerator(seed: 74)
        let relu = Epilogue(activation: .relu)
        let oneByOne = ConvolutionParameters()
        let threeByThree = ConvolutionParameters(pads: [1, 1, 1, 1])
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([1, 6, 5, 5]))],
            outputs: ["a", "b", "c"].map { GraphValue(name: $0, type: nil) },
            initializers: [
                "w1": .random([4, 6, 1, 1], using: &rng), "w2": .random([8, 6, 1, 1], using: &rng),
                "w3": .random([4, 6, 3, 3], using: &rng),
            ],
            nodes: [
                node("conv1", ConvolutionLayer(oneByOne, epilogue: relu), ["x", "w1"], "a"),
                node("downsample", ConvolutionLayer(oneByOne), ["x", "w2"], "b"),
                node("conv3x3", ConvolutionLayer(threeByThree, epilogue: relu), ["x", "w3"], "c"),
            ])
        try g.inferTypes()
        let log = RejectionLog()
        #expect(try !HorizontalFusion().run(&g, log.context))
        #expect(
            log.lines.sorted() == [
                "conv1: horizontal fusion: not joined with downsample, conv3x3, which read 'x' too: another window, bias or activation",
                "conv3x3: horizontal fusion: not joined with conv1, downsample, which read 'x' too: another window, bias or activation",
                "downsample: horizontal fusion: not joined with conv1, conv3x3, which read 'x' too: another window, bias or activation",
            ])
    }

    /// The slices join a channels-last region: their axis moves to the last, and no transpose separates the
    /// wide convolution from the layers that read its slices.
    @Test func slicesOfConvolutionsGoChannelsLast() throws {
        var rng = SeededGenerator(seed: 73)
        let x = Tensor.random([1, 6, 5, 5], using: &rng)
        let device = CPUDevice(threads: 2)
        let engine = try Builder.build(try Self.inceptionBlock(batch: 1), device: device)
        var graph = engine.graph
        let moved = try ChannelsLastLayout(runsChannelsLast: { _, _ in true }).apply(&graph)
        #expect(moved > 0)
        let slices = graph.nodes.compactMap { $0.layer as? SliceLayer }
        #expect(slices.count == 3 && slices.allSatisfy { $0.axes == [3] }, "\(graph.textForm())")
        #expect(graph.nodes.filter { $0.layer is TransposeLayer }.count == 2, "\(graph.textForm())")
        let laidOut = try Builder.build(graph, device: device, config: BuilderConfig(optimize: false))
        let expected = try engine.makeContext().run(["x": .tensor(x)])
        let actual = try laidOut.makeContext().run(["x": .tensor(x)])
        let problem = Comparison.mismatch(
            try #require(actual["y"]), try #require(expected["y"]), rtol: 1e-4, atol: 1e-5)
        #expect(problem == nil, "\(problem ?? "")")
    }
}

/// The strided views the attention fusion composes.
@Suite struct StridedViewTests {
    @Test func reshapesAndTransposesCompose() throws {
        // [B=2, S=3, E=8] split into 2 heads of 4 and transposed to [B, H, S, D].
        let split = try #require(StridedView(dense: [2, 3, 8]).reshaped([2, 3, 2, 4]))
        let heads = split.transposed([0, 2, 1, 3])
        #expect(heads.strides == [24, 4, 8, 1])
        // Merging S and H, not adjacent in memory after the transpose, gives an axis of two parts: exact, but
        // no single stride; splitting it again restores the strides.
        let merged2 = try #require(heads.reshaped([2, 6, 4]))
        #expect(merged2.strides == nil)
        #expect(merged2.reshaped([2, 2, 3, 4])?.strides == [24, 4, 8, 1])
        // A boundary inside a part that does not divide there has no view.
        #expect(StridedView(dense: [6, 4]).transposed([1, 0]).reshaped([3, 8]) == nil)
        // Merging B and H of a [H, B, S, D] view is fine when B follows H in memory.
        let merged = try #require(StridedView(dense: [3, 4, 5, 2]).reshaped([12, 5, 2]))
        #expect(merged.strides == [10, 2, 1])
        // Unit axes may appear anywhere.
        let unit = try #require(heads.reshaped([2, 1, 2, 3, 4]))
        #expect(unit.strides == [24, 0, 4, 8, 1])
    }

    @Test func slicesOffsetAndKeepStrides() throws {
        let v = try #require(
            StridedView(dense: [2, 3, 12]).sliced([
                .init(start: 0, step: 1, count: 2), .init(start: 0, step: 1, count: 3),
                .init(start: 4, step: 1, count: 4),
            ]))
        #expect(v.offset == 4 && v.strides == [36, 12, 1])
        #expect(v.selecting(1, of: 0, keep: false)?.offset == 40)
        let split = try #require(v.reshaped([2, 3, 2, 2]))
        #expect(split.strides == [36, 12, 2, 1] && split.offset == 4)
    }

    @Test func inverseTransposeUndoesTranspose() {
        let v = StridedView(dense: [2, 3, 4, 5])
        #expect(v.transposed([2, 0, 3, 1]).untransposed([2, 0, 3, 1]) == v)
    }
}
