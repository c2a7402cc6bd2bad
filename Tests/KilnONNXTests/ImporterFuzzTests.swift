import Foundation
import KilnIR
import KilnONNX
import KilnTestSupport
import Testing

/// Feeds thousands of corrupted model files to the importer. Each must import or throw: never trap, never hang.
@Suite struct ImporterFuzzTests {
    /// The bundled default model: convolutions, weights, attributes of several types.
    static func seedModel() throws -> Data {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try Data(contentsOf: root.appendingPathComponent("models/tinycnn/model.onnx"))
    }

    @Test func seedModelImports() throws {
        let model = try ONNXImporter.load(data: Self.seedModel(), directory: nil)
        #expect(model.graph.nodes.count > 5)
    }

    @Test(arguments: 0..<4)
    func mutatedModelsNeverTrap(round: Int) throws {
        let original = [UInt8](try Self.seedModel())
        var generator = SeededGenerator(seed: UInt64(1000 + round))
        var rejected = 0
        let iterations = 800
        for _ in 0..<iterations {
            var bytes = original
            if Int.random(in: 0..<5, using: &generator) == 0 {
                // Varint corruption, which protobuf decoding meets first: continuation bits set on a run of bytes.
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                for j in i..<min(bytes.count, i + Int.random(in: 1...10, using: &generator)) { bytes[j] |= 0x80 }
            } else {
                Damage.apply(to: &bytes, using: &generator)  // bit flips, truncation, overwrites, insertions
            }
            do {
                _ = try ONNXImporter.load(data: Data(bytes), directory: nil)
            } catch is KilnError {
                rejected += 1
            }
        }
        // Most corruptions must be caught; some (e.g. a flipped bit inside weight data) are still valid models.
        #expect(rejected > iterations / 10)
    }
}
