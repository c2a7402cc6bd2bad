import Foundation
import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

/// A zero Pad of the spatial axes before a convolution becomes the convolution's own padding; other Pads stay.
@Suite struct PadFoldingTests {
    let context = FusionGraphs.noEvaluation

    /// x [1,2,6,7] -> pad (`padLayer`, extra inputs) -> conv 3x3 stride 2 (`convPads`) -> y.
    func graph(
        _ padLayer: PadLayer, padInputs: [String] = [], convPads: [Int] = [], extra: [String: Tensor] = [:]
    ) -> Graph {
        var rng = SeededGenerator(seed: 21)
        var initializers: [String: Tensor] = ["w": .random([3, 2, 3, 3], using: &rng)]
        initializers.merge(extra) { a, _ in a }
        var g = Graph(
            name: "g", inputs: [GraphValue(name: "x", type: FusionGraphs.f32([1, 2, 6, 7]))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: initializers,
            nodes: [
                Node(name: "pad", layer: padLayer, inputs: ["x"] + padInputs, outputs: ["p"]),
                Node(
                    name: "conv", layer: ConvolutionLayer(ConvolutionParameters(strides: [2, 2], pads: convPads)),
                    inputs: ["p", "w"], outputs: ["y"]),
            ])
        try? g.inferTypes()
        return g
    }

    static func ints(_ values: [Int64]) -> Tensor { Tensor(shape: [values.count], scalars: values) }

    /// Pads as an input (opset 11+), over NCHW, added to the convolution's own.
    @Test func foldsConstantPadsIntoConvolution() throws {
        var g = graph(
            PadLayer(mode: .constant, pads: nil, value: nil, axes: nil), padInputs: ["pads"], convPads: [1, 0, 0, 1],
            extra: ["pads": Self.ints([0, 0, 0, 1, 0, 0, 1, 2])])
        #expect(try PadFolding().run(&g, context))
        let expected = """
            graph g(x: f32[1,2,6,7]) -> (y: f32[1,3,3,5])
              const pads: i64[8]
              const w: f32[3,2,3,3]
              y = convolution[strides=[2, 2],pads=[1, 1, 1, 3]](x, w)    # pad + conv : f32[1,3,3,5]
            """
        #expect(g.textForm() == expected)
    }

    /// The same folding computes what the Pad and convolution computed (CPU, random input).
    @Test func foldedConvolutionMatchesPadThenConvolution() throws {
        let g = graph(
            PadLayer(mode: .constant, pads: [0, 0, 2, 0, 0, 0, 1, 3], value: 0, axes: nil), convPads: [0, 1, 1, 0])
        var rng = SeededGenerator(seed: 22)
        let run = try OptimizedVersusPlain(g, ["x": .random([1, 2, 6, 7], using: &rng)])
        run.expectSameOutputs()
        #expect(run.optimized.nodes.map(\.kind) == [ConvolutionLayer.kind])
    }

    /// Axes given as an input select the spatial axes.
    @Test func foldsPadsOverGivenAxes() throws {
        var g = graph(
            PadLayer(mode: .constant, pads: nil, value: nil, axes: nil), padInputs: ["pads", "", "axes"],
            extra: ["pads": Self.ints([1, 1, 1, 1]), "axes": Self.ints([-2, -1])])
        #expect(try PadFolding().run(&g, context))
        let conv = try #require(g.nodes.first { $0.kind == ConvolutionLayer.kind }?.layer as? ConvolutionLayer)
        #expect(g.nodes.count == 1 && conv.parameters.pads == [1, 1, 1, 1])
    }

    /// A non-zero value, another mode, channel padding and cropping are not a convolution's padding: each is
    /// left alone and reported with its reason.
    @Test func leavesOtherPadsAndSaysWhy() throws {
        let cases: [(PadLayer, String)] = [
            (
                PadLayer(mode: .constant, pads: [0, 0, 1, 1, 0, 0, 1, 1], value: 0.5, axes: nil),
                "the pad value is not a constant zero"
            ),
            (
                PadLayer(mode: .reflect, pads: [0, 0, 1, 1, 0, 0, 1, 1], value: nil, axes: nil),
                "only constant-mode pads fold"
            ),
            (
                PadLayer(mode: .constant, pads: [0, 1, 0, 0, 0, 0, 0, 0], value: nil, axes: nil),
                "it pads the batch or channel axis"
            ),
            (PadLayer(mode: .constant, pads: [0, 0, -1, 0, 0, 0, 0, 0], value: nil, axes: nil), "negative pads crop"),
        ]
        for (layer, reason) in cases {
            let log = RejectionLog()
            var g = graph(layer)
            let before = g.textForm()
            #expect(try !PadFolding().run(&g, log.context))
            #expect(g.textForm() == before)
            #expect(log.lines == ["conv: pad not folded: \(reason)"])
        }
    }

    /// A Pad another layer also reads stays for it; the convolution still reads the unpadded input.
    @Test func keepsPadOtherLayersRead() throws {
        var g = graph(PadLayer(mode: .constant, pads: [0, 0, 1, 1, 0, 0, 1, 1], value: nil, axes: nil))
        g.outputs.append(GraphValue(name: "p", type: nil))
        #expect(try PadFolding().run(&g, context))
        #expect(g.nodes.map(\.name) == ["pad", "pad + conv"])
        #expect(g.nodes[1].inputs[0] == "x")
    }

    /// The pass is in the standard pipeline, where `--no-fuse pad-folding` names it.
    @Test func standardPipelineRunsIt() {
        #expect(Pipeline.standardPassNames.contains("pad-folding"))
    }
}
