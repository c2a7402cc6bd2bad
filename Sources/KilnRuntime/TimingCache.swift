import Foundation
import KilnIR

/// The tactic a device chose for each layer signature it timed (for example a cuBLASLt algorithm per product
/// shape), for one device. A build that starts from a cache times nothing it already knows, and the same
/// model, options and cache give the same plan. The file is JSON, readable and diffable.
public struct TimingCache: Sendable, Equatable {
    public static let formatVersion = 1

    public var device: DeviceFingerprint
    /// Layer signature -> chosen tactic.
    public var tactics: [String: String]

    public init(device: DeviceFingerprint, tactics: [String: String] = [:]) {
        self.device = device
        self.tactics = tactics
    }

    private struct File: Codable {
        var format: Int
        var kiln: String
        var device: [String: String]
        var tactics: [String: String]
    }

    /// The cache in `url` when it exists and was made on a device like `device` (same name, architecture and
    /// software); nil when there is no file. A cache of another device is not an error: it is ignored, and
    /// `note` says why (TensorRT does the same).
    public static func load(_ url: URL, for device: DeviceFingerprint, note: (String) -> Void) throws -> TimingCache? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: try Data(contentsOf: url))
        } catch {
            throw KilnError.io("\(url.path): not a Kiln timing cache (\(error)); delete it to start a new one")
        }
        guard file.format == formatVersion else {
            note(
                "timing cache \(url.lastPathComponent) has format \(file.format), not \(formatVersion): not used or changed"
            )
            return nil
        }
        let cached = DeviceFingerprint(
            kind: file.device["kind"] ?? "", name: file.device["name"] ?? "",
            architecture: file.device["architecture"] ?? "", software: file.device["software"] ?? "")
        guard cached == device else {
            note(
                "timing cache \(url.lastPathComponent) was made on \(cached.summary), \(cached.software): not used "
                    + "or changed")
            return nil
        }
        return TimingCache(device: device, tactics: file.tactics)
    }

    public func save(_ url: URL) throws {
        let file = File(
            format: Self.formatVersion, kiln: KilnVersion.string,
            device: [
                "kind": device.kind, "name": device.name, "architecture": device.architecture,
                "software": device.software,
            ], tactics: tactics)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try encoder.encode(file).write(to: url, options: .atomic) } catch {
            throw KilnError.io("\(url.path): cannot write the timing cache: \(error.localizedDescription)")
        }
    }
}
