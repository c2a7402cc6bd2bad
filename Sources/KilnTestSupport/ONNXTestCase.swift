import Foundation
import KilnIR
import KilnONNX

/// One ONNX backend test case: a folder with `model.onnx` and `test_data_set_N/{input,output}_K.pb`.
public struct ONNXTestCase: Sendable {
    public var directory: URL
    /// The case folder's parent folder name (`node`, `light`, ...).
    public var group: String { directory.deletingLastPathComponent().lastPathComponent }
    public var name: String { directory.lastPathComponent }

    public init(directory: URL) { self.directory = directory }

    /// Every case under `paths`: a path is a case itself or a folder searched recursively; folders whose name
    /// starts with a dot are skipped. Sorted by group and name.
    public static func discover(_ paths: [String]) throws -> [ONNXTestCase] {
        var found: [ONNXTestCase] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw KilnError.io("\(path): no such folder")
            }
            var stack = [URL(fileURLWithPath: path).standardizedFileURL]
            while let dir = stack.popLast() {
                if fm.fileExists(atPath: dir.appendingPathComponent("model.onnx").path) {
                    found.append(ONNXTestCase(directory: dir))
                    continue
                }
                let children = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
                for child in children where !child.hasPrefix(".") {
                    var childIsDir: ObjCBool = false
                    let url = dir.appendingPathComponent(child)
                    if fm.fileExists(atPath: url.path, isDirectory: &childIsDir), childIsDir.boolValue {
                        stack.append(url)
                    }
                }
            }
        }
        return found.sorted { ($0.group, $0.name) < ($1.group, $1.name) }
    }

    /// Tolerances: onnx's runner defaults unless `data.json` gives `rtol`/`atol`.
    public func tolerances() -> (rtol: Double, atol: Double) {
        var rtol = 1e-3
        var atol = 1e-7
        if let data = try? Data(contentsOf: directory.appendingPathComponent("data.json")),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            if let r = json["rtol"] as? Double { rtol = r }
            if let a = json["atol"] as? Double { atol = a }
        }
        return (rtol, atol)
    }

    /// The data-set folders, in numeric order.
    public func dataSets() -> [URL] {
        let children = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return children.filter { $0.hasPrefix("test_data_set_") }
            .sorted { (Int($0.dropFirst(14)) ?? 0) < (Int($1.dropFirst(14)) ?? 0) }
            .map { directory.appendingPathComponent($0) }
    }

    /// Reads `prefix_0.pb`, `prefix_1.pb`, ... with the given declared types (by position).
    public static func readValues(_ dataSet: URL, prefix: String, types: [ValueType?]) throws -> [Value] {
        var values: [Value] = []
        for (i, type) in types.enumerated() {
            let url = dataSet.appendingPathComponent("\(prefix)_\(i).pb")
            guard let data = try? Data(contentsOf: url) else {
                throw KilnError.io("\(dataSet.lastPathComponent)/\(prefix)_\(i).pb is missing")
            }
            values.append(
                try withErrorContext("\(dataSet.lastPathComponent)/\(prefix)_\(i).pb") {
                    try ValueFile.read(data, type: type)
                })
        }
        return values
    }
}
