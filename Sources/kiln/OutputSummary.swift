import Foundation
import KilnIR

/// One-line descriptions of outputs, and writing them as files all at once (nothing partial on failure).
enum OutputSummary {
    static func line(name: String, value: Value) -> String {
        guard case .tensor(let t) = value else { return "\(name): \(value)" }
        guard t.count > 0, let values = try? t.doubleValues() else { return "\(name): \(t.type)" }
        let finite = values.filter(\.isFinite)
        let mean = finite.reduce(0, +) / Double(max(finite.count, 1))
        let lo = finite.min() ?? .nan
        let hi = finite.max() ?? .nan
        return "\(name): \(t.type)  min \(fmt(lo))  max \(fmt(hi))  mean \(fmt(mean))"
            + (finite.count < values.count ? "  (\(values.count - finite.count) non-finite)" : "")
    }

    private static func fmt(_ v: Double) -> String { String(format: "%.6g", v) }

    /// A file name for an output: path separators and other unsafe characters become '_'.
    static func fileName(_ name: String) -> String {
        let safe = name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }
        return String(safe) + ".npy"
    }

    /// Writes every file to a temporary name first, then renames; on any error, removes what it wrote.
    static func write(_ files: [(String, Data)], to directory: String) throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw KilnError.io("\(directory): cannot create the output folder: \(error.localizedDescription)")
        }
        let dir = URL(fileURLWithPath: directory)
        var temporaries: [(URL, URL)] = []
        do {
            for (name, data) in files {
                let final = dir.appendingPathComponent(name)
                let temp = dir.appendingPathComponent(".\(name).partial")
                try data.write(to: temp)
                temporaries.append((temp, final))
            }
            for (temp, final) in temporaries {
                _ = try? fm.removeItem(at: final)
                try fm.moveItem(at: temp, to: final)
            }
        } catch {
            for (temp, _) in temporaries { try? fm.removeItem(at: temp) }
            throw KilnError.io("\(directory): cannot write outputs: \(error.localizedDescription)")
        }
        for (name, _) in files { print("wrote \(dir.appendingPathComponent(name).path)") }
    }
}
