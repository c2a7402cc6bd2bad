import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnONNX

/// A model file is imported from its mapping with the weights' bytes left out of the decoded message
/// (`ModelFile`); what comes out must be exactly what decoding the file's bytes gives, for good files and for
/// damaged ones alike (where the walk gives up, the importer decodes the file as it is).
@Suite struct ModelFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The graph's text form and every initializer's bytes, or the error's text.
    static func outcome(_ load: () throws -> ONNXModel) -> String {
        do {
            let graph = try load().graph
            let weights = graph.initializers.keys.sorted().map { name in
                let t = graph.initializers[name]!
                return "\(name) \(t.type) " + t.withUnsafeRawBytes { Data($0).base64EncodedString() }
            }
            return graph.textForm() + weights.joined(separator: "\n")
        } catch {
            return "error: \(error)"
        }
    }

    static func temporaryFile(_ bytes: Data) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-modelfile-\(UUID()).onnx")
        try bytes.write(to: url)
        return url
    }

    @Test(arguments: ["tinycnn", "digits-qdq", "digits-fp8"])
    func mappedImportEqualsDecodedImport(_ name: String) throws {
        let url = Self.root.appendingPathComponent("models/\(name)/model.onnx")
        let data = try Data(contentsOf: url)
        // The mapped path is the one taken: the walk found the weights and the decoded copy is small.
        let file = try #require(ModelFile(url))
        #expect(
            !file.rawData.isEmpty && file.stripped.count * 4 < data.count, "\(file.stripped.count) of \(data.count)")
        let mapped = Self.outcome { try ONNXImporter.load(contentsOf: url) }
        #expect(!mapped.hasPrefix("error"), "\(mapped.prefix(300))")
        #expect(
            mapped == Self.outcome { try ONNXImporter.load(data: data, directory: url.deletingLastPathComponent()) })
    }

    @Test func damagedFilesImportAsTheirBytesDecode() throws {
        let original = [UInt8](try Data(contentsOf: Self.root.appendingPathComponent("models/tinycnn/model.onnx")))
        var generator = SeededGenerator(seed: SeededGenerator.testSeed())
        var differences: [String] = []
        var rejected = 0
        for _ in 0..<300 {
            var bytes = original
            Damage.apply(to: &bytes, using: &generator)
            let url = try Self.temporaryFile(Data(bytes))
            defer { try? FileManager.default.removeItem(at: url) }
            let mapped = Self.outcome { try ONNXImporter.load(contentsOf: url) }
            let decoded = Self.outcome { try ONNXImporter.load(data: Data(bytes), directory: nil) }
            // Both rejected (the messages may say where differently), or the same model.
            let bothRejected = mapped.hasPrefix("error") && decoded.hasPrefix("error")
            if bothRejected { rejected += 1 }
            if !bothRejected, mapped != decoded {
                differences.append("\(mapped.prefix(200)) <> \(decoded.prefix(200))")
            }
        }
        #expect(
            differences.isEmpty, "\(differences.count) damaged files imported differently: \(differences.prefix(3))")
        #expect(rejected > 30)
    }
}
