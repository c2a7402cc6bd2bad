/// What an engine built for one device needs of another to run there: the same kind of device and the same
/// architecture (compiled GPU code is for one compute capability). The name and software versions are
/// recorded for reports.
public struct DeviceFingerprint: Sendable, Hashable {
    /// `cpu`, `cuda`.
    public var kind: String
    public var name: String
    /// `sm_90` for a GPU, the instruction set (`x86_64`, `arm64`) for the CPU.
    public var architecture: String
    /// Driver and library versions.
    public var software: String

    public init(kind: String, name: String, architecture: String, software: String = "") {
        self.kind = kind
        self.name = name
        self.architecture = architecture
        self.software = software
    }

    public func canRun(_ builtFor: DeviceFingerprint) -> Bool {
        kind == builtFor.kind && architecture == builtFor.architecture
    }

    public var summary: String { "\(name) (\(kind) \(architecture))" }

    /// The instruction set this process runs on.
    public static var hostArchitecture: String {
        #if arch(x86_64)
            "x86_64"
        #elseif arch(arm64)
            "arm64"
        #else
            "unknown"
        #endif
    }
}
