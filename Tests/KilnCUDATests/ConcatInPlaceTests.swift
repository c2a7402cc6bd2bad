import KilnCPU
import KilnIR
import KilnOptimizer
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Concat inputs stored inside the concat's output (`concat-in-place`): which inputs the memory layout takes,
/// that the copies it makes unnecessary are the ones left out, and that nothing alive at the same time shares
/// the output's bytes (no GPU needed); then whole networks on the GPU against the CPU.
@Suite struct ConcatInPlaceTests {
    /// Lowers every node the way the plan builder would for the layout: the concat through its own lowering,
    /// everything else as one opaque step that writes its output.
    static func lowered(_ graph: Graph) throws -> [CUDAPlanBuilder.LoweredNode] {
        try graph.nodes.map { node in
            guard let concat = node.layer as? ConcatLayer else {
                return CUDAPlanBuilder.LoweredNode(node: node, lowering: CUDALowering(steps: []))
            }
            let info = CUDANodeInfo(
                node: node, inputs: node.inputs.map { graph.type(of: $0)?.tensorType },
                outputs: node.outputs.compactMap { graph.type(of: $0)?.tensorType },
                constants: node.inputs.map { graph.initializers[$0] }, architecture: 90, options: CUDAOptions())
            return CUDAPlanBuilder.LoweredNode(node: node, lowering: try CUDAShapeConcat.lower(concat, info))
        }
    }

    /// x -> a = relu(x), b = relu(a), y = concat(a, b, x, b) on channels; w = relu(y); z = concat(y, w), the
    /// output.
    /// 64 float32 channels of 2x2 are 1 KiB, so every block starts on the arena's 256-byte alignment.
    static func network(channels: Int = 64) throws -> Graph {
        var n = NetworkBuilder(name: "concats")
        let x = n.addInput("x", .float32, [1, .value(channels), 2, 2])
        let a = try n.relu(x)
        let b = try n.relu(a)
        let y = try n.add(ConcatLayer(axis: 1), [a, b, x, b], name: "y")[0]
        let w = try n.relu(y)
        let z = try n.add(ConcatLayer(axis: 1), [y, w], name: "z")[0]
        try n.markOutput(z)
        return try n.build()
    }

    @Test func storesEachInputThatCanBeInsideTheOutput() throws {
        let graph = try Self.network()
        let nodes = try Self.lowered(graph)
        let layout = try CUDAMemoryLayout(graph: graph, nodes: nodes)
        let (a, b, x) = (graph.nodes[0].outputs[0], graph.nodes[1].outputs[0], "x")
        let (y, w) = ("y", graph.nodes[3].outputs[0])
        // a at the start of y; b is read twice by that concat and x is a graph input: both keep their bytes.
        #expect(layout.storage(of: a) == ("z", 0))
        #expect(layout.storage(of: b).root == b && layout.storage(of: x).root == x)
        // y is itself an input of z: y, and a inside it, live at the start of z; w right after y.
        #expect(layout.storage(of: y) == ("z", 0))
        #expect(layout.storage(of: w) == ("z", 4 * 1024))

        // The copies left are exactly those of the values that keep their own bytes.
        let concatNode = 2
        let steps = try #require(nodes[concatNode].lowering?.steps)
        let left = steps.compactMap { step -> Int? in
            guard case .copy(let copy) = step, case .input(let i) = copy.source else { return nil }
            return layout.copiesInPlace(copy, node: concatNode) ? nil : i
        }
        #expect(left == [1, 2, 3])
        let zSteps = nodes[4].lowering?.steps ?? []
        #expect(
            zSteps.allSatisfy { step in
                guard case .copy(let copy) = step else { return false }
                return layout.copiesInPlace(copy, node: 4)
            })

        // Off by name: every input has bytes of its own and every copy runs.
        let off = try CUDAMemoryLayout(graph: graph, nodes: nodes, placesInputs: false)
        #expect(off.storage(of: a).root == a && off.storage(of: w).root == w)
        #expect(
            !steps.contains { step in
                guard case .copy(let copy) = step else { return false }
                return off.copiesInPlace(copy, node: concatNode)
            })
        #expect(layout.plan.arenaBytes <= off.plan.arenaBytes)
    }

    @Test func valuesAliveMeanwhileDoNotShareTheOutputsBytes() throws {
        let graph = try Self.network()
        let layout = try CUDAMemoryLayout(graph: graph, nodes: try Self.lowered(graph))
        // b lives from its producer (before y) to y's concat; the output's bytes are taken from a's producer on.
        let out = try #require(layout.arenaOffset(of: "z"))
        let b = try #require(layout.arenaOffset(of: graph.nodes[1].outputs[0]))
        let x = try #require(layout.arenaOffset(of: "x"))
        let outBytes = 2 * 4 * 1024
        for (start, bytes) in [(b, 1024), (x, 1024)] {
            #expect(start + bytes <= out || out + outBytes <= start, "[\(start), +\(bytes)) inside the output")
        }
    }

    @Test func leavesBlocksOffTheArenaAlignmentAsCopies() throws {
        // 3 channels of 2x2 float32: 48-byte blocks, so only the first input starts on a 256-byte boundary.
        let graph = try Self.network(channels: 3)
        let layout = try CUDAMemoryLayout(graph: graph, nodes: try Self.lowered(graph))
        #expect(layout.storage(of: graph.nodes[0].outputs[0]) == ("z", 0))
        #expect(layout.storage(of: graph.nodes[3].outputs[0]).root == graph.nodes[3].outputs[0])
    }

    /// `--no-fuse concat-in-place` reaches the builder as a pass name it must accept on any device.
    @Test func theBuilderAcceptsTheSwitchByName() throws {
        let config = BuilderConfig(disabledPasses: [Pipeline.concatInPlace])
        _ = try Builder.build(try Self.network(), device: CPUDevice(threads: 1), config: config)
        #expect(throws: KilnError.self) {
            try Builder.build(
                try Self.network(), device: CPUDevice(threads: 1), config: .init(disabledPasses: ["concat-in-plac"]))
        }
    }

    /// A stem convolution, an Inception-style block (five branches from it, one through max pooling and one
    /// that is max pooling, concatenated) feeding a DenseNet-style chain
    /// (each layer's output appended to everything before it); outputs "y" and the first branch.
    static func blocks(_ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "blocks")
        let x = n.addInput("x", .float32, [.symbol("N"), 16, 8, 8])
        func conv(_ v: NetworkBuilder.Value, _ inC: Int, _ outC: Int, _ k: Int) throws -> NetworkBuilder.Value {
            let w = n.addConstant("w", .random([outC, inC, k, k], in: -0.3...0.3, using: &gen))
            let b = n.addConstant("b", .random([outC], in: -0.3...0.3, using: &gen))
            return try n.relu(try n.convolution(v, weights: w, bias: b, pads: Array(repeating: k / 2, count: 4)))
        }
        let stem = try conv(x, 16, 16, 3)
        let pooled = try n.add(
            PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1])), [stem],
            name: "pool")[0]
        let branches = [
            try conv(stem, 16, 16, 1), try conv(try conv(stem, 16, 8, 1), 8, 16, 3), try conv(stem, 16, 8, 5),
            try conv(pooled, 16, 8, 1),
            try n.add(
                PoolLayer(op: .max, window: PoolGeometry(kernel: [5, 5], strides: [1, 1], pads: [2, 2, 2, 2])),
                [stem], name: "pool branch")[0],
        ]
        var features = try n.add(ConcatLayer(axis: 1), branches, name: "inception")[0]
        var channels = 64
        for layer in 0..<3 {
            let grown = try conv(try conv(features, channels, 16, 1), 16, 8, 3)
            features = try n.add(ConcatLayer(axis: 1), [features, grown], name: "dense\(layer)")[0]
            channels += 8
        }
        try n.markOutput(features, as: "y")
        try n.markOutput(branches[0], as: "first branch")
        return try n.build()
    }

    /// The blocks network on fresh random inputs at `batch`, and the CPU's outputs for them.
    static func blocksCase(
        batch: Int
    ) throws -> (graph: Graph, feeds: [String: Value], reference: [String: Value], seed: UInt64) {
        let seed = SeededGenerator.testSeed()
        var gen = SeededGenerator(seed: seed)
        let graph = try blocks(&gen)
        let feeds: [String: Value] = ["x": .tensor(Tensor.random([batch, 16, 8, 8], in: -1...1, using: &gen))]
        let reference = try Builder.build(graph, device: CPUDevice(threads: 2)).makeContext().run(feeds)
        return (graph, feeds, reference, seed)
    }

    static func expectClose(
        _ got: [String: Value], _ want: [String: Value], within tolerance: Double, _ context: String
    ) throws {
        for output in ["y", "first branch"] {
            let g = try #require(got[output]).asTensor()
            let w = try #require(want[output]).asTensor()
            let error = FloatDifference(g.scalars(as: Float.self), w.scalars(as: Float.self)).relative
            #expect(g.shape == w.shape && error < tolerance, "\(context) \(output): relative error \(error)")
        }
    }

    /// At batch 1 in float32 every concat's inputs are contiguous blocks of its output: the same outputs as
    /// the CPU and as the engine built without `concat-in-place`, with every concat's copies left out. Horizontal
    /// fusion is off for that count: it makes the inception's first branch a view of a wider convolution's output,
    /// which stays where it is (its concat copies it); with it on the outputs are the same.
    @Test(.enabled(if: gpuUsable)) func blocksMatchTheCPUWithTheCopiesLeftOut() throws {
        let (graph, feeds, reference, seed) = try Self.blocksCase(batch: 1)
        let gpu = try sharedGPU()
        // Left out as `kiln build --no-fuse` does: the builder and the device (which optimizes again per shape).
        let unfused: Set<String> = ["horizontal-fusion"]
        let engine = try Builder.build(
            graph, device: try CUDADevice(options: CUDADeviceOptions(disabledPasses: unfused)),
            config: BuilderConfig(disabledPasses: unfused))
        let report = try engine.makeContext().report(for: feeds)
        let concats = report.layers.filter { $0.kind == ConcatLayer.kind }
        #expect(concats.count == 4 && concats.allSatisfy { $0.implementation.contains("in place") }, "\(concats)")

        let disabled = unfused.union([Pipeline.concatInPlace])
        let offDevice = try CUDADevice(options: CUDADeviceOptions(disabledPasses: disabled))
        let off = try Builder.build(graph, device: offDevice, config: BuilderConfig(disabledPasses: disabled))
        #expect(try off.makeContext().report(for: feeds).launches > report.launches)
        let fused = try Builder.build(graph, device: gpu)
        try Self.expectClose(try engine.makeContext().run(feeds), reference, within: 1e-5, "in place, seed \(seed)")
        try Self.expectClose(try off.makeContext().run(feeds), reference, within: 1e-5, "copies, seed \(seed)")
        try Self.expectClose(try fused.makeContext().run(feeds), reference, within: 1e-5, "fused, seed \(seed)")
    }

    /// In float16 the whole network goes channels-last, concats included (on the last axis): one transpose in,
    /// one out per output, at batch 3. The inception's 1×1 convolution after the pooling (a cuBLASLt product)
    /// and its max pooling branch write into their columns of its output; its first branch is a graph output
    /// and cuDNN has no algorithm writing a channels-last output with a row stride (it answers NOT_SUPPORTED),
    /// so those and each dense layer's new features are copied. The same outputs as the CPU and as the engine
    /// that copies every input.
    @Test(.enabled(if: gpuUsable)) func float16BlocksWriteWhatTheKernelsCanIntoTheirColumns() throws {
        let (graph, feeds, reference, seed) = try Self.blocksCase(batch: 3)
        let unfused: Set<String> = ["horizontal-fusion"]
        let written = try Self.float16Engine(graph, disabling: unfused)
        let concats = written.graph.nodes.compactMap { $0.layer as? ConcatLayer }
        #expect(concats.count == 4 && concats.allSatisfy { $0.axis == 3 }, "\(written.graph.textForm())")
        #expect(written.graph.nodes.filter { $0.layer is TransposeLayer }.count == 3, "\(written.graph.textForm())")
        let report = try written.makeContext().report(for: feeds)
        let layers = report.layers.filter { $0.kind == ConcatLayer.kind }.map(\.implementation)
        let all = report.layers.map { "\($0.name) \($0.kind.name): \($0.implementation)" }.joined(separator: "\n")
        #expect(
            layers == ["cuda: 1 step, 2 of 5 inputs written in place"] + Array(repeating: "cuda: 1 step", count: 3),
            "\(all)")
        let copies = try Self.float16Engine(graph, disabling: unfused.union([Pipeline.concatInPlace]))
        try Self.expectClose(try written.makeContext().run(feeds), reference, within: 5e-3, "float16, seed \(seed)")
        try Self.expectClose(try copies.makeContext().run(feeds), reference, within: 5e-3, "copies, seed \(seed)")
        try Self.expectClose(
            try Self.float16Engine(graph, disabling: []).makeContext().run(feeds), reference, within: 5e-3,
            "fused, seed \(seed)")
    }

    static func float16Engine(_ graph: Graph, disabling disabled: Set<String>) throws -> Engine {
        var config = BuilderConfig(disabledPasses: disabled)
        config.half = HalfConfig(dtype: .float16)
        let device = try CUDADevice(options: CUDADeviceOptions(disabledPasses: disabled))
        return try Builder.build(graph, device: device, config: config)
    }

    /// A SqueezeNet-style fire module in float16 at batch 2: the expanding 1×1 convolution (a cuBLASLt product
    /// writing its rows the concat's row apart) and a max pooling of the squeezed features write every column
    /// of the concat's output, so the concat has nothing to do: one launch fewer than copying, the same outputs.
    @Test(.enabled(if: gpuUsable)) func float16FireModuleLeavesTheConcatNothingToDo() throws {
        let seed = SeededGenerator.testSeed()
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "fire")
        let x = n.addInput("x", .float32, [2, 16, 8, 8])
        func conv(_ v: NetworkBuilder.Value, _ inC: Int, _ outC: Int) throws -> NetworkBuilder.Value {
            let w = n.addConstant("w", .random([outC, inC, 1, 1], in: -0.3...0.3, using: &gen))
            let b = n.addConstant("b", .random([outC], in: -0.3...0.3, using: &gen))
            return try n.relu(try n.convolution(v, weights: w, bias: b, pads: [0, 0, 0, 0]))
        }
        let squeezed = try conv(x, 16, 8)
        let pooled = try n.add(
            PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1])), [squeezed],
            name: "pool")[0]
        let fire = try n.add(ConcatLayer(axis: 1), [try conv(squeezed, 8, 16), pooled], name: "fire")[0]
        try n.markOutput(try conv(fire, 24, 16), as: "y")
        let graph = try n.build()
        let feeds: [String: Value] = ["x": .tensor(Tensor.random([2, 16, 8, 8], in: -1...1, using: &gen))]
        let reference = try Builder.build(graph, device: CPUDevice(threads: 2)).makeContext().run(feeds)
        let written = try Self.float16Engine(graph, disabling: [])
        let report = try written.makeContext().report(for: feeds)
        let concat = report.layers.filter { $0.kind == ConcatLayer.kind }.map(\.implementation)
        #expect(concat == ["no work (inputs written in place)"], "\(report.layers)")
        let copies = try Self.float16Engine(graph, disabling: [Pipeline.concatInPlace])
        #expect(try copies.makeContext().report(for: feeds).launches == report.launches + 1)
        for (engine, name) in [(written, "written"), (copies, "copies")] {
            let got = try #require(try engine.makeContext().run(feeds)["y"]).asTensor()
            let want = try #require(reference["y"]).asTensor()
            let error = FloatDifference(got.scalars(as: Float.self), want.scalars(as: Float.self)).relative
            #expect(error < 5e-3, "\(name), seed \(seed): relative error \(error)")
        }
    }

    /// In float32 at batch 3 (channels-first, each input `batch` blocks of the output): cuDNN's convolutions
    /// write their images into the concat's output with its strides; the 1×1 ones, products with a bias pass
    /// after them, and the pooling (channels-first kernel) are copied. Untimed (level 0) the slots are taken;
    /// timed, each strided convolution's choice is a tactic (1: written into the concat, 0: copied), and the
    /// layers that write into their concat are exactly those chosen. The same outputs as the CPU both ways.
    @Test(.enabled(if: gpuUsable)) func float32BatchedBlocksWriteIntoTheirColumns() throws {
        let (graph, feeds, reference, seed) = try Self.blocksCase(batch: 3)
        let unfused: Set<String> = ["horizontal-fusion"]
        func engine(level: Int) throws -> (Engine, CUDADevice) {
            let device = try CUDADevice(
                options: CUDADeviceOptions(
                    kernels: CUDAOptions(allowTF32: false, level: level), disabledPasses: unfused))
            // Batch 3 compiled at build time, where tactics are timed.
            var config = BuilderConfig(disabledPasses: unfused)
            config.profiles = [
                ShapeProfile(inputs: [.init(name: "x", min: [3, 16, 8, 8], opt: [3, 16, 8, 8], max: [3, 16, 8, 8])])
            ]
            return (try Builder.build(graph, device: device, config: config), device)
        }
        let (untimed, _) = try engine(level: 0)
        let report = try untimed.makeContext().report(for: feeds)
        let layers = report.layers.filter { $0.kind == ConcatLayer.kind }.map(\.implementation)
        // The inception's 3×3 and 5×5 branches; each dense layer's 3×3.
        #expect(
            layers == ["cuda: 1 step, 2 of 5 inputs written in place"]
                + Array(repeating: "cuda: 1 step, 1 of 2 inputs written in place", count: 3), "\(layers)")
        try Self.expectClose(try untimed.makeContext().run(feeds), reference, within: 1e-5, "untimed, seed \(seed)")

        let (timed, device) = try engine(level: 3)
        let choices = device.libraries.tactics.filter { $0.key.hasPrefix(CUDALibraries.kernelPrefix + "slot ") }
        let writers = try timed.makeContext().report(for: feeds).layers.filter {
            $0.implementation.hasSuffix("output written into its concat's")
        }
        #expect(choices.count == 5 && choices.values.allSatisfy { $0 == "0" || $0 == "1" }, "\(choices)")
        #expect(writers.count == choices.values.filter { $0 == "1" }.count, "\(choices) \(writers)")
        try Self.expectClose(try timed.makeContext().run(feeds), reference, within: 1e-5, "timed, seed \(seed)")
    }
}
