import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime
import KilnTestSupport
import Testing

/// Plan files: an engine saved and loaded runs as built, equal builds give equal bytes, and damaged or foreign
/// plans are refused with a message, never a crash.
@Suite struct PlanFileTests {
    static func model() throws -> Graph {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try ONNXImporter.load(contentsOf: root.appendingPathComponent("models/tinycnn/model.onnx")).graph
    }

    static func planBytes() throws -> Data {
        let engine = try Builder.build(try model(), device: CPUDevice())
        return try engine.plan(options: BuildOptions(shapes: [.init(name: "image", dims: [2, 3, 32, 32])])).encoded()
    }

    static func feeds(_ engine: Engine, seed: UInt64) -> [String: Value] {
        var generator = SeededGenerator(seed: seed)
        return [engine.inputs[0].name: .tensor(Tensor.random([2, 3, 32, 32], using: &generator))]
    }

    @Test func loadedPlanRunsLikeTheBuiltEngine() throws {
        let built = try Builder.build(try Self.model(), device: CPUDevice())
        let plan = try EnginePlan(decoding: try built.plan(options: BuildOptions()).encoded())
        #expect(plan.kilnVersion == KilnVersion.string)
        #expect(plan.device.kind == "cpu")
        #expect(plan.graph.nodes.map(\.description) == built.graph.nodes.map(\.description))
        let loaded = try Engine(plan: plan, device: CPUDevice())
        let feeds = Self.feeds(built, seed: 7)
        let want = try built.makeContext().run(feeds)
        let got = try loaded.makeContext().run(feeds)
        #expect(Comparison.differingOutputs(want, got, names: built.outputs.map(\.name)) == [])
    }

    /// The reader works on slices of the file's bytes: a plan inside a larger buffer decodes the same.
    @Test func aPlanInsideALargerBufferDecodesTheSame() throws {
        let bytes = try Self.planBytes()
        let buffer = Data(repeating: 0xAB, count: 13) + bytes + Data(repeating: 0xCD, count: 5)
        let slice = buffer[13..<(13 + bytes.count)]
        let fromSlice = try EnginePlan(decoding: slice)
        #expect(!fromSlice.graph.initializers.isEmpty)
        // Encoding again gives the same bytes, weights included.
        #expect(try fromSlice.encoded() == bytes)
    }

    @Test func equalBuildsGiveEqualBytes() throws {
        let first = try Self.planBytes()
        let second = try Self.planBytes()
        #expect(first == second)
        // Saving a loaded plan again changes nothing either.
        let reloaded = try Engine(plan: EnginePlan(decoding: first), device: CPUDevice())
        let plan = try EnginePlan(decoding: first)
        #expect(try reloaded.plan(options: plan.options).encoded() == first)
    }

    /// `write(to:)` streams the same bytes `encoded()` returns, replaces an existing file (one that a running
    /// engine has mapped keeps working), and a write that cannot happen leaves no partial file behind.
    @Test func aWrittenPlanIsTheEncodedPlanAndReplacesTheOldFileWhole() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-write-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let built = try Builder.build(try Self.model(), device: CPUDevice())
        let plan = built.plan(options: BuildOptions(shapes: [.init(name: "image", dims: [2, 3, 32, 32])]))
        let url = folder.appendingPathComponent("tiny.kiln")
        try plan.write(to: url)
        #expect(try Data(contentsOf: url) == (try plan.encoded()))
        let running = try Engine(plan: EnginePlan(contentsOf: url), device: CPUDevice())
        try plan.write(to: url)
        let feeds = Self.feeds(built, seed: 13)
        #expect(
            Comparison.differingOutputs(
                try built.makeContext().run(feeds), try running.makeContext().run(feeds),
                names: built.outputs.map(\.name)) == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["tiny.kiln"])
        let nowhere = folder.appendingPathComponent("missing-folder/tiny.kiln")
        let error = #expect(throws: KilnError.self) { try plan.write(to: nowhere) }
        #expect(error?.message.contains("missing-folder/tiny.kiln") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["tiny.kiln"])
    }

    @Test func aPlanForAnotherDeviceIsRefusedWithWhatToDo() throws {
        var plan = try EnginePlan(decoding: try Self.planBytes())
        plan.device = DeviceFingerprint(kind: "cuda", name: "NVIDIA H100", architecture: "sm_90")
        let error = #expect(throws: KilnError.self) { try Engine(plan: plan, device: CPUDevice()) }
        #expect(error?.kind == .invalidPlan)
        #expect(error?.message.contains("built for NVIDIA H100 (cuda sm_90)") == true)
        #expect(error?.message.contains("kiln build MODEL --device cpu") == true)
    }

    @Test func anotherFormatVersionIsRefusedWithWhatToDo() throws {
        var bytes = [UInt8](try Self.planBytes())
        bytes[4] = 99
        let error = #expect(throws: KilnError.self) { try EnginePlan(decoding: Data(bytes)) }
        #expect(error?.message.contains("format version 99") == true)
        #expect(error?.message.contains("rebuild") == true)
    }

    @Test func notAPlanAndTruncatedPlansAreRefused() throws {
        let bytes = try Self.planBytes()
        #expect(throws: KilnError.self) { try EnginePlan(decoding: Data("ONNX model".utf8)) }
        #expect(throws: KilnError.self) { try EnginePlan(decoding: Data()) }
        let error = #expect(throws: KilnError.self) { try EnginePlan(decoding: bytes.prefix(bytes.count / 2)) }
        #expect(error?.message.contains("corrupt or truncated") == true)
    }

    /// A plan read from its file keeps its weights in the file's mapped pages; it runs as the built engine,
    /// and a truncated or empty file is refused like truncated bytes.
    @Test func aPlanFileLoadsMappedAndRunsLikeTheBuiltEngine() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let built = try Builder.build(try Self.model(), device: CPUDevice())
        let bytes = try built.plan(options: BuildOptions()).encoded()
        let url = folder.appendingPathComponent("tiny.kiln")
        try bytes.write(to: url)
        let plan = try EnginePlan(contentsOf: url)
        #expect(!plan.graph.initializers.isEmpty)
        #expect(plan.graph.initializers.values.allSatisfy { $0.storage.isBorrowed }, "weights point into the file")
        var loaded = try Engine(plan: plan, device: CPUDevice())
        let feeds = Self.feeds(built, seed: 11)
        let want = try built.makeContext().run(feeds)
        #expect(
            Comparison.differingOutputs(want, try loaded.makeContext().run(feeds), names: built.outputs.map(\.name))
                == [])
        // The mapping outlives the plan value: the engine still runs once nothing else holds the file.
        loaded = try Engine(plan: EnginePlan(contentsOf: url), device: CPUDevice())
        try FileManager.default.removeItem(at: url)
        #expect(
            Comparison.differingOutputs(want, try loaded.makeContext().run(feeds), names: built.outputs.map(\.name))
                == [])
        let truncated = folder.appendingPathComponent("truncated.kiln")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        let error = #expect(throws: KilnError.self) { try EnginePlan(contentsOf: truncated) }
        #expect(error?.message.contains("corrupt or truncated") == true)
        let empty = folder.appendingPathComponent("empty.kiln")
        try Data().write(to: empty)
        #expect(throws: KilnError.self) { try EnginePlan(contentsOf: empty) }
        #expect(throws: KilnError.self) { try EnginePlan(contentsOf: folder.appendingPathComponent("missing.kiln")) }
    }

    /// Thousands of damaged plans: raw damage (the checksum must catch it) and damage with the checksum made
    /// valid again (the decoders and the graph checks must catch it). Each loads or throws; a plan that loads
    /// must also run or throw.
    @Test(arguments: 0..<4)
    func damagedPlansNeverTrap(round: Int) throws {
        let original = [UInt8](try Self.planBytes())
        var generator = SeededGenerator(seed: UInt64(2000 + round))
        let iterations = 600
        var rejected = 0
        for iteration in 0..<iterations {
            var bytes = Array(original.dropLast(8))
            Damage.apply(to: &bytes, using: &generator)
            var file = Data(bytes)
            if iteration % 2 == 0 {
                var hash = StableHash()
                file.withUnsafeBytes { hash.combine($0) }
                withUnsafeBytes(of: hash.value.littleEndian) { file.append(contentsOf: $0) }
            } else {
                file.append(contentsOf: original.suffix(8))
            }
            do {
                let engine = try Engine(plan: EnginePlan(decoding: file), device: CPUDevice())
                _ = try? engine.makeContext().run(Self.feeds(engine, seed: 1))
            } catch is KilnError {
                rejected += 1
            }
        }
        // Every raw damage is caught by the checksum; damage behind a valid checksum is often a valid plan
        // (a changed weight), so only a floor is asserted.
        #expect(rejected >= iterations / 2)
    }
}

/// Refit: a plan takes the weights of another model of the same network and runs as an engine built from it.
@Suite struct RefitTests {
    /// The bundled model with every float weight scaled.
    static func reweighted(_ graph: Graph, by factor: Float) -> Graph {
        var graph = graph
        for (name, tensor) in graph.initializers where tensor.dtype == .float32 {
            graph.initializers[name] = Tensor(
                shape: tensor.shape, scalars: tensor.scalars(as: Float.self).map { $0 * factor })
        }
        return graph
    }

    @Test func refittedPlanRunsLikeAnEngineBuiltFromTheNewModel() throws {
        let original = try PlanFileTests.model()
        let plan = try EnginePlan(decoding: try PlanFileTests.planBytes())
        let other = Self.reweighted(original, by: 1.5)
        let refitted = try plan.refitted(from: other, evaluator: CPUDevice())
        let loaded = try Engine(plan: EnginePlan(decoding: try refitted.encoded()), device: CPUDevice())
        let direct = try Builder.build(other, device: CPUDevice())
        let feeds = PlanFileTests.feeds(direct, seed: 3)
        let want = try direct.makeContext().run(feeds)
        let got = try loaded.makeContext().run(feeds)
        let before = try Engine(plan: plan, device: CPUDevice()).makeContext().run(feeds)
        let names = direct.outputs.map(\.name)
        #expect(Comparison.differingOutputs(want, got, names: names) == [])
        #expect(Comparison.differingOutputs(want, before, names: names).count == names.count)
    }

    @Test func anotherNetworkIsRefusedWithTheFirstDifference() throws {
        let plan = try EnginePlan(decoding: try PlanFileTests.planBytes())
        var other = try PlanFileTests.model()
        guard let index = other.nodes.firstIndex(where: { $0.kind == PoolLayer.kind }) else {
            Issue.record("the bundled model has no pooling layer")
            return
        }
        other.nodes[index].name = "renamed"
        let error = #expect(throws: KilnError.self) { try plan.refitted(from: other, evaluator: CPUDevice()) }
        #expect(error?.message.contains("not the network this plan was built from") == true)
        #expect(error?.message.contains("'renamed'") == true)

        var reshaped = try PlanFileTests.model()
        if let name = reshaped.initializers.keys.sorted().first(where: { $0.hasSuffix("b") || $0.hasSuffix("bias") }),
            let bias = reshaped.initializers[name]
        {
            reshaped.initializers[name] = Tensor(zeros: bias.dtype, shape: [bias.count + 1])
        }
        #expect(throws: KilnError.self) { try plan.refitted(from: reshaped, evaluator: CPUDevice()) }
    }
}

/// Shape profiles: an engine accepts the shapes inside one of its profiles and names the range otherwise; the
/// profiles travel in the plan.
@Suite struct ShapeProfileTests {
    static let profile = ShapeProfile(inputs: [
        .init(name: "image", min: [1, 3, 32, 32], opt: [4, 3, 32, 32], max: [8, 3, 32, 32])
    ])

    @Test func shapesOutsideEveryProfileAreRefused() throws {
        var config = BuilderConfig()
        config.profiles = [Self.profile]
        let engine = try Builder.build(try PlanFileTests.model(), device: CPUDevice(), config: config)
        var generator = SeededGenerator(seed: 4)
        let inside = try engine.makeContext().run(["image": .tensor(Tensor.random([8, 3, 32, 32], using: &generator))])
        #expect(inside.count == 1)
        let error = #expect(throws: KilnError.self) {
            try engine.makeContext().run(["image": .tensor(Tensor.random([9, 3, 32, 32], using: &generator))])
        }
        #expect(error?.message.contains("input 'image' has shape [9, 3, 32, 32], outside every profile") == true)
        #expect(error?.message.contains("image=1x3x32x32:4x3x32x32:8x3x32x32") == true)
    }

    @Test func profilesTravelInThePlan() throws {
        var config = BuilderConfig()
        config.profiles = [Self.profile]
        let engine = try Builder.build(try PlanFileTests.model(), device: CPUDevice(), config: config)
        var options = BuildOptions()
        options.profiles = [Self.profile]
        let loaded = try Engine(
            plan: EnginePlan(decoding: try engine.plan(options: options).encoded()), device: CPUDevice())
        #expect(loaded.profiles == [Self.profile])
    }

    @Test func badProfilesAreRefused() throws {
        let model = try PlanFileTests.model()
        for range in [
            ShapeProfile.Range(name: "picture", min: [1, 3, 32, 32], opt: [1, 3, 32, 32], max: [1, 3, 32, 32]),
            ShapeProfile.Range(name: "image", min: [4, 3, 32, 32], opt: [2, 3, 32, 32], max: [8, 3, 32, 32]),
            ShapeProfile.Range(name: "image", min: [1, 3, 32, 32], opt: [1, 3, 32, 32], max: [1, 3, 16, 32]),
            ShapeProfile.Range(name: "image", min: [1, 3, 32], opt: [1, 3, 32], max: [1, 3, 32]),
        ] {
            var config = BuilderConfig()
            config.profiles = [ShapeProfile(inputs: [range])]
            #expect(throws: KilnError.self) { try Builder.build(model, device: CPUDevice(), config: config) }
        }
    }

    /// A mapped plan is checked a chunk of 16 MiB at a time (each chunk's pages given back once read): a plan of
    /// several chunks loads with its weights intact, and a byte changed in a later chunk is still caught.
    @Test func aPlanOfSeveralChunksIsCheckedWhole() throws {
        var generator = SeededGenerator(seed: 5)
        let weights = Tensor.random([2048, 2560], using: &generator)  // 20 MiB
        let graph = Graph(
            name: "wide", inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, [1, 2048])))],
            outputs: [GraphValue(name: "y", type: nil)], initializers: ["w": weights],
            nodes: [Node(name: "mm", layer: MatMulLayer(), inputs: ["x", "w"], outputs: ["y"])])
        let bytes = try Builder.build(graph, device: CPUDevice()).plan(options: BuildOptions()).encoded()
        #expect(bytes.count > 18 << 20)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("wide.kiln")
        try bytes.write(to: url)
        let plan = try EnginePlan(contentsOf: url)
        let loaded = try #require(plan.graph.initializers["w"])
        #expect(loaded.withUnsafeRawBytes { Data($0) } == weights.withUnsafeRawBytes { Data($0) })
        var damaged = bytes
        damaged[17 << 20] ^= 0x01
        try damaged.write(to: url)
        let error = #expect(throws: KilnError.self) { try EnginePlan(contentsOf: url) }
        #expect(error?.message.contains("checksum mismatch") == true)
    }
}
