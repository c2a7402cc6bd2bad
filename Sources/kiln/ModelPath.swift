import Foundation

/// Accepts a model file, or a folder holding `model.onnx` (an ONNX test case).
enum ModelPath {
    static func resolve(_ path: String) -> URL {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        let candidate = url.appendingPathComponent("model.onnx")
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
            FileManager.default.fileExists(atPath: candidate.path)
        {
            return candidate
        }
        return url
    }
}
