import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

/// Reads calibration or validation data into batches of engine inputs: one `.npz` (arrays named `input__NAME`
/// or `NAME`, one per engine input), or a folder of `.npz` files (each read the same way) or `.npy` files (for
/// a single-input engine, each a batch of it). Arrays are cut into batches of `batch` along their first axis.
enum CalibrationData {
    static func load(_ path: String, inputs: [GraphValue], batch: Int) throws -> [[String: Tensor]] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw KilnError.io("\(path): no such file or folder")
        }
        let files: [URL]
        if isFolder.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files = names.filter { $0.hasSuffix(".npz") || $0.hasSuffix(".npy") }.sorted()
                .map { URL(fileURLWithPath: path).appendingPathComponent($0) }
            guard !files.isEmpty else {
                throw KilnError.invalidArgument("\(path): no .npz or .npy files in the folder")
            }
        } else {
            files = [URL(fileURLWithPath: path)]
        }
        var batches: [[String: Tensor]] = []
        for file in files {
            let arrays = try withErrorContext(file.path) { try read(file, inputs: inputs) }
            batches += try withErrorContext(file.path) { try split(arrays, batch: batch) }
        }
        return batches
    }

    /// The engine inputs one file holds.
    private static func read(_ url: URL, inputs: [GraphValue]) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KilnError.io("cannot read: \(error.localizedDescription)")
        }
        let names = inputs.map(\.name)
        if url.pathExtension == "npy" {
            guard names.count == 1 else {
                throw KilnError.invalidArgument(
                    ".npy data serves single-input models; this one has \(names.count) inputs (use .npz files with "
                        + "arrays named input__NAME)")
            }
            return [names[0]: try NPY.decode(data)]
        }
        var found: [String: Tensor] = [:]
        for (key, tensor) in try NPZ.decode(data) {
            let name = key.hasPrefix("input__") ? String(key.dropFirst("input__".count)) : key
            if names.contains(name) { found[name] = tensor }
        }
        if let missing = names.first(where: { found[$0] == nil }) {
            throw KilnError.invalidArgument(
                "no array for input '\(missing)' (name it input__\(missing) or \(missing))")
        }
        return found
    }

    /// Cuts every array into batches of `batch` along axis 0; all arrays must have the same first dimension.
    static func split(_ arrays: [String: Tensor], batch: Int) throws -> [[String: Tensor]] {
        guard let count = arrays.values.first?.shape.first else {
            throw KilnError.invalidArgument("an array is a scalar")
        }
        guard arrays.values.allSatisfy({ $0.shape.first == count }) else {
            throw KilnError.shapeMismatch("the arrays hold different numbers of samples (first dimensions differ)")
        }
        return stride(from: 0, to: count, by: max(batch, 1)).map { start in
            let end = min(start + batch, count)
            return arrays.mapValues { slice($0, start..<end) }
        }
    }

    static func slice(_ t: Tensor, _ rows: Range<Int>) -> Tensor {
        if rows.count == t.shape[0] { return t }
        let rowElements = t.shape.dropFirst().reduce(1, *)
        let rowBytes = rowElements * t.dtype.byteSize
        var shape = t.shape
        shape[0] = rows.count
        let out = Tensor(zeros: t.dtype, shape: shape)
        out.storage.bytes.copyMemory(
            from: t.storage.bytes + rows.lowerBound * rowBytes, byteCount: rows.count * rowBytes)
        return out
    }
}
