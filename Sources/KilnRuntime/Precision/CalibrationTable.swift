import Foundation
import KilnIR

/// The calibrated range of every activation an int8 layer reads, and how it was found. Saved as a text file
/// (`--calibration-cache`) so calibration runs once and a user can read or edit it:
///
///     # Kiln INT8 calibration cache
///     calibrator: entropy
///     samples: 256
///     1.9532   input
///     4.0625   /2/Relu_output_0
///
/// Each range line is `amax`, a tab, and the value's name (names may hold spaces and colons).
public struct CalibrationTable: Sendable, Equatable {
    public var method: String
    public var samples: Int
    public var ranges: [String: Float]

    public init(method: String, samples: Int, ranges: [String: Float]) {
        self.method = method
        self.samples = samples
        self.ranges = ranges
    }

    /// The file's text. Value names holding a line break cannot be written (nor read back): they are left out,
    /// so a build that reads the cache calibrates again.
    public var text: String {
        var lines = ["# Kiln INT8 calibration cache", "calibrator: \(method)", "samples: \(samples)"]
        for name in ranges.keys.sorted() where !name.contains(where: \.isNewline) {
            lines.append("\(ranges[name]!)\t\(name)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public init(text: String, source: String) throws {
        var method: String?
        var samples = 0
        var ranges: [String: Float] = [:]
        // Line breaks of any kind (a file edited on Windows has CRLF, which Swift reads as one character).
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("calibrator:") {
                method = trimmed.dropFirst("calibrator:".count).trimmingCharacters(in: .whitespaces)
            } else if trimmed.hasPrefix("samples:") {
                guard let n = Int(trimmed.dropFirst("samples:".count).trimmingCharacters(in: .whitespaces)), n >= 0
                else {
                    throw KilnError.invalidArgument("\(source):\(number + 1): 'samples:' needs a count, got '\(line)'")
                }
                samples = n
            } else if let tab = line.firstIndex(of: "\t"),
                let amax = Float(line[..<tab].trimmingCharacters(in: .whitespaces)),
                amax.isFinite, amax >= 0
            {
                ranges[String(line[line.index(after: tab)...])] = amax
            } else {
                throw KilnError.invalidArgument(
                    "\(source):\(number + 1): expected 'calibrator: NAME', 'samples: N' or 'AMAX<tab>NAME', got '\(line)'"
                )
            }
        }
        guard let method else { throw KilnError.invalidArgument("\(source): no 'calibrator:' line") }
        self.init(method: method, samples: samples, ranges: ranges)
    }

    /// The table in `url`, or nil when there is no such file.
    public static func load(_ url: URL) throws -> CalibrationTable? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw KilnError.io("\(url.path): cannot read the calibration cache: \(error.localizedDescription)")
        }
        return try CalibrationTable(text: text, source: url.path)
    }

    public func save(_ url: URL) throws {
        do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
            throw KilnError.io("\(url.path): cannot write the calibration cache: \(error.localizedDescription)")
        }
    }
}
