import Foundation
import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Sibling convolutions fused into one (`horizontal-fusion`) leave channel slices: a contiguous, aligned slice is
/// a view of the wide output (no GPU needed to check the lowering), and whole Inception-shaped blocks match the
/// CPU on the GPU, channels-first at batch 1 (views) and channels-last in float16 (strided copies).
@Suite struct HorizontalConvolutionTests {
    func lowerSlice(_ shape: [Int], channels: Range<Int>, dtype: DType = .float32) throws -> CUDALowering {
        let layer = SliceLayer(
            starts: [channels.lowerBound], ends: [channels.upperBound], axes: [1], steps: nil, isStatic: true)
        let node = Node(name: "s", layer: layer, inputs: ["x"], outputs: ["y"])
        var out = shape
        out[1] = channels.count
        let info = CUDANodeInfo(
            node: node, inputs: [TensorType(dtype, dims: shape)], outputs: [TensorType(dtype, dims: out)],
            constants: [nil], architecture: 90, options: CUDAOptions())
        let lower = try #require(CUDAShapeLowerings.copies.first { $0.0 == SliceLayer.kind }?.1)
        return try lower(info)
    }

    @Test func contiguousAlignedChannelSlicesAreViews() throws {
        // Batch 1, channels 4..<7 of 8x8 float32 planes: 1 KiB in, on the arena's alignment.
        let view = try lowerSlice([1, 12, 8, 8], channels: 4..<7)
        #expect(view.steps.isEmpty && view.aliases == [0: 0] && view.aliasOffsets == [0: 4 * 64 * 4])
        // Batch 2: two blocks, a strided copy.
        #expect(!(try lowerSlice([2, 12, 8, 8], channels: 4..<7)).steps.isEmpty)
        // 5x5 planes: the slice starts 400 bytes in, off the alignment library kernels were chosen for.
        #expect(!(try lowerSlice([1, 12, 5, 5], channels: 4..<7)).steps.isEmpty)
    }

    /// Three ReLU'd 1x1 convolutions, a 3x3 and a pooled branch over x, concatenated: Inception's block.
    static func block(batch: Int, channels: Int, size: Int) throws -> Graph {
        var gen = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970))
        var n = NetworkBuilder(name: "inception")
        let x = n.addInput("x", .float32, [.value(batch), .value(channels), .value(size), .value(size)])
        func constant(_ name: String, _ shape: [Int]) -> NetworkBuilder.Value {
            n.addConstant(name, .random(shape, in: -0.2...0.2, using: &gen))
        }
        func conv(_ v: NetworkBuilder.Value, _ name: String, _ out: Int, _ k: Int) throws -> NetworkBuilder.Value {
            let pad = k / 2
            return try n.relu(
                try n.convolution(
                    v, weights: constant(name, [out, try #require(n.type(of: v)?.tensorType?.shape?[1].value), k, k]),
                    bias: constant(name + "b", [out]),
                    pads: [pad, pad, pad, pad]))
        }
        let a = try conv(x, "a", 64, 1)
        let b = try conv(try conv(x, "b1", 48, 1), "b2", 64, 3)
        let c = try conv(try conv(x, "c1", 16, 1), "c2", 32, 3)
        let pooled = try n.add(
            PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1])), [x],
            name: "pool")[0]
        let d = try conv(pooled, "d", 32, 1)
        try n.markOutput(try n.add(ConcatLayer(axis: 1), [a, b, c, d], name: "y")[0], as: "y")
        return try n.build()
    }

    @Test(.enabled(if: gpuUsable), arguments: [(1, false), (4, true)])
    func inceptionBlocksMatchTheCPU(batch: Int, half: Bool) throws {
        let graph = try Self.block(batch: batch, channels: 64, size: 16)
        var config = BuilderConfig()
        if half { config.half = HalfConfig(dtype: .float16) }
        let engine = try Builder.build(graph, device: try sharedGPU(), config: config)
        // The three 1x1 convolutions over x: one over 64 + 48 + 16 output channels.
        let wide = engine.graph.nodes.filter {
            $0.layer is ConvolutionLayer && engine.graph.initializers[$0.inputs[1]]?.shape.first == 128
        }
        #expect(!wide.isEmpty, "no fused convolution in \(engine.graph.textForm())")
        var gen = SeededGenerator(seed: 5)
        let input = Tensor.random([batch, 64, 16, 16], in: -1...1, using: &gen)
        let reference = try Builder.build(graph, device: CPUDevice(threads: 2)).makeContext().run(["x": .tensor(input)])
        let got = try engine.makeContext().run(["x": .tensor(input)])
        let (g, w) = (try #require(got["y"]).asTensor(), try #require(reference["y"]).asTensor())
        let error = FloatDifference(g.scalars(as: Float.self), w.scalars(as: Float.self)).relative
        #expect(error < (half ? 5e-3 : 1e-5), "relative error \(error)")
    }
}
