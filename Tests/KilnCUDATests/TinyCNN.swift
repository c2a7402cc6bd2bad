import Foundation
import KilnIR
import KilnONNX

/// The bundled tiny CNN, found beside these sources or, where the test bundle was built in another folder
/// (a bundle carried to the GPU machine), under the working directory.
func tinyCNN() throws -> Graph {
    let path = "models/tinycnn/model.onnx"
    let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(path)
    let url =
        FileManager.default.fileExists(atPath: sources.path)
        ? sources : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path)
    return try ONNXImporter.load(contentsOf: url).graph
}
