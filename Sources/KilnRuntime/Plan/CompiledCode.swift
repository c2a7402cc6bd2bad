/// One blob of device code an engine compiled (a cubin), named so the device finds it again when a plan is
/// loaded and does not need its compiler.
public struct CompiledCode: Sendable, Hashable {
    public var name: String
    public var bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}
