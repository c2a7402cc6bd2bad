import Foundation
import KilnIR
import KilnRuntime

/// The CPU backend: a reference kernel for every layer kind, multithreaded where it pays.
public final class CPUDevice: Device {
    public let properties: DeviceProperties
    private let kernels: [LayerKind: CPUKernelFactory]

    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        properties = DeviceProperties(name: "CPU", kind: "cpu", threads: max(1, threads))
        kernels = CPUKernelRegistry.all
    }

    public func supports(_ node: Node) -> Bool { kernels[node.kind] != nil }

    public func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel {
        guard let factory = kernels[node.kind] else {
            throw KilnError.unsupported("the CPU backend has no kernel for layer kind '\(node.kind)'")
        }
        return try factory(node.layer, subgraphs)
    }

    /// Every layer kind this backend implements.
    public var supportedKinds: [LayerKind] { kernels.keys.sorted() }
}
