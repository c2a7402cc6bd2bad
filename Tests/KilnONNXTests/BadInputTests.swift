import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime
import Testing

/// Every malformed input gives a KilnError whose message names the problem; none traps.
@Suite struct BadInputTests {
    func importError(_ data: Data, directory: URL? = nil) -> String? {
        do {
            _ = try ONNXImporter.load(data: data, directory: directory)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func validModelImports() throws {
        let model = try ONNXImporter.load(data: ModelFactory.bytes(ModelFactory.identity()), directory: nil)
        #expect(model.graph.nodes.count == 1)
        #expect(model.graph.outputs.first?.type == .tensor(TensorType(.float32, dims: [2, 3])))
    }

    @Test func truncatedFile() throws {
        let data = try ModelFactory.bytes(ModelFactory.identity())
        let message = importError(data.prefix(data.count - 7))
        #expect(message?.contains("not a valid ONNX model") == true, "\(message ?? "no error")")
    }

    @Test func garbageFile() {
        let message = importError(Data("this is not a protobuf at all \u{1}\u{2}\u{3}".utf8))
        #expect(message != nil)
    }

    @Test func emptyFileHasNoGraph() {
        #expect(importError(Data())?.contains("no graph") == true)
    }

    @Test func unknownOperatorNamesTheNode() throws {
        let model = ModelFactory.model(
            nodes: [
                ModelFactory.node("Identity", ["x"], ["t"], name: "a"),
                ModelFactory.node("Frobnicate", ["t"], ["y"], name: "bad"),
            ],
            inputs: [ModelFactory.value("x", 1, [2])], outputs: [ModelFactory.value("y", 1, [2])])
        let message = importError(try ModelFactory.bytes(model)) ?? ""
        #expect(message.contains("node 1 'bad' (Frobnicate)"), "\(message)")
        #expect(message.contains("not supported"), "\(message)")
    }

    @Test func unknownDomain() throws {
        let model = ModelFactory.model(
            nodes: [ModelFactory.node("Thing", ["x"], ["y"], name: "n", domain: "com.example")],
            inputs: [ModelFactory.value("x", 1, [2])], outputs: [ModelFactory.value("y", 1, [2])],
            extraOpsets: [("com.example", 1)])
        let message = importError(try ModelFactory.bytes(model)) ?? ""
        #expect(message.contains("unknown operator domain 'com.example'"), "\(message)")
    }

    @Test func opsetNewerThanSupported() throws {
        let message = importError(try ModelFactory.bytes(ModelFactory.identity(opset: 99))) ?? ""
        #expect(message.contains("opset 99 is newer than Kiln supports"), "\(message)")
    }

    @Test func cycleIsReported() throws {
        let model = ModelFactory.model(
            nodes: [
                ModelFactory.node("Identity", ["b"], ["a"], name: "first"),
                ModelFactory.node("Identity", ["a"], ["b"], name: "second"),
            ],
            inputs: [ModelFactory.value("x", 1, [2])], outputs: [ModelFactory.value("b", 1, [2])])
        let message = importError(try ModelFactory.bytes(model)) ?? ""
        #expect(message.contains("cycle"), "\(message)")
        #expect(message.contains("'first'") || message.contains("'second'"), "\(message)")
    }

    @Test func danglingNameIsReported() throws {
        let model = ModelFactory.model(
            nodes: [ModelFactory.node("Identity", ["nowhere"], ["y"], name: "lost")],
            inputs: [ModelFactory.value("x", 1, [2])], outputs: [ModelFactory.value("y", 1, [2])])
        let message = importError(try ModelFactory.bytes(model)) ?? ""
        #expect(message.contains("'nowhere'") && message.contains("'lost'"), "\(message)")
    }

    @Test func missingExternalDataFile() throws {
        var tensor = Onnx_TensorProto()
        tensor.name = "w"
        tensor.dims = [2]
        tensor.dataType = 1
        tensor.dataLocation = .external
        var location = Onnx_StringStringEntryProto()
        location.key = "location"
        location.value = "weights.bin"
        tensor.externalData = [location]
        var model = ModelFactory.identity()
        model.graph.initializer = [tensor]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let message = importError(try ModelFactory.bytes(model), directory: directory) ?? ""
        #expect(message.contains("tensor 'w'") && message.contains("weights.bin"), "\(message)")
    }

    @Test func externalDataOutsideTheModelFolderIsRefused() throws {
        var tensor = Onnx_TensorProto()
        tensor.name = "w"
        tensor.dims = [1]
        tensor.dataType = 1
        tensor.dataLocation = .external
        var location = Onnx_StringStringEntryProto()
        location.key = "location"
        location.value = "../../etc/passwd"
        tensor.externalData = [location]
        var model = ModelFactory.identity()
        model.graph.initializer = [tensor]
        let message = importError(try ModelFactory.bytes(model), directory: URL(fileURLWithPath: "/tmp/models")) ?? ""
        #expect(message.contains("outside the model's folder"), "\(message)")
    }

    @Test func externalDataIsRead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let values: [Float] = [1.5, -2, 3.25, 9]
        try values.withUnsafeBytes {
            try Data([0, 0, 0, 0] + Array($0)).write(to: directory.appendingPathComponent("w.bin"))
        }
        var tensor = Onnx_TensorProto()
        tensor.name = "w"
        tensor.dims = [2, 2]
        tensor.dataType = 1
        tensor.dataLocation = .external
        tensor.externalData = [("location", "w.bin"), ("offset", "4"), ("length", "16")].map { key, value in
            var e = Onnx_StringStringEntryProto()
            e.key = key
            e.value = value
            return e
        }
        var model = ModelFactory.identity()
        model.graph.initializer = [tensor]
        model.graph.node.append(ModelFactory.node("Identity", ["w"], ["z"], name: "w-out"))
        model.graph.output.append(ModelFactory.value("z", 1, [2, 2]))
        let imported = try ONNXImporter.load(data: ModelFactory.bytes(model), directory: directory)
        #expect(imported.graph.initializers["w"]?.scalars(as: Float.self) == values)
    }

    @Test func nonexistentPath() {
        #expect(throws: KilnError.self) {
            try ONNXImporter.load(contentsOf: URL(fileURLWithPath: "/nonexistent/model.onnx"))
        }
    }

    @Test func wrongInputShapeAndDtypeNameTheTensor() throws {
        let model = try ONNXImporter.load(data: ModelFactory.bytes(ModelFactory.identity()), directory: nil)
        let engine = try Builder.build(model.graph, device: CPUDevice(threads: 1))
        let context = engine.makeContext()
        let badShape = Tensor(shape: [3, 2], scalars: [Float](repeating: 1, count: 6))
        #expect {
            try context.run(["x": .tensor(badShape)])
        } throws: { error in
            "\(error)".contains("input 'x'") && "\(error)".contains("shape")
        }
        let badType = Tensor(shape: [2, 3], scalars: [Int64](repeating: 1, count: 6))
        #expect {
            try context.run(["x": .tensor(badType)])
        } throws: { error in
            "\(error)".contains("input 'x'") && "\(error)".contains("dtype")
        }
        #expect(throws: KilnError.self) { try context.run([:]) }
    }
}
