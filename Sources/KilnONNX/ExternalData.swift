import Foundation
import KilnIR

/// Reads tensor bytes stored beside the model (`location`, `offset`, `length` keys of ONNX external data).
enum ExternalData {
    static func read(_ entries: [Onnx_StringStringEntryProto], directory: URL?) throws -> Data {
        var location: String?
        var offset = 0
        var length: Int?
        for entry in entries {
            switch entry.key {
            case "location": location = entry.value
            case "offset":
                guard let v = Int(entry.value), v >= 0 else {
                    throw KilnError.invalidModel("external data offset '\(entry.value)' is not a byte count")
                }
                offset = v
            case "length":
                guard let v = Int(entry.value), v >= 0 else {
                    throw KilnError.invalidModel("external data length '\(entry.value)' is not a byte count")
                }
                length = v
            default: break
            }
        }
        guard let location, !location.isEmpty else {
            throw KilnError.invalidModel("external data has no location")
        }
        guard let directory else {
            throw KilnError.invalidModel("external data '\(location)' needs the model's folder, which is unknown")
        }
        let url = directory.appendingPathComponent(location).standardizedFileURL
        guard url.path.hasPrefix(directory.standardizedFileURL.path + "/") else {
            throw KilnError.invalidModel("external data location '\(location)' points outside the model's folder")
        }
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw KilnError.io("external data file '\(url.path)' is missing or unreadable")
        }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map { Int($0) } ?? 0
        let count = length ?? (size - offset)
        guard offset <= size, count >= 0, offset + count <= size else {
            throw KilnError.invalidModel(
                "external data '\(location)' range \(offset)..<\(offset + count) exceeds the file's \(size) bytes")
        }
        try handle.seek(toOffset: UInt64(offset))
        let data = try handle.read(upToCount: count) ?? Data()
        guard data.count == count else { throw KilnError.io("short read from external data '\(location)'") }
        return data
    }
}
