import Foundation
import KilnIR
import KilnRuntime

/// The CPU backend: a reference kernel for every layer kind, multithreaded where it pays.
public final class CPUDevice: Device {
    public let properties: DeviceProperties
    private let kernels: [LayerKind: CPUKernelFactory]
    let tuner: GemmTuner

    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount, options: CPUOptions = .init()) {
        properties = DeviceProperties(name: "CPU", kind: "cpu", threads: max(1, threads))
        kernels = CPUKernelRegistry.all
        tuner = GemmTuner(options: options)
    }

    /// The micro-kernel tactics chosen so far (timed, or loaded from a plan or timing cache), by layer signature.
    public var tactics: [String: String] { tuner.tactics }

    public func preloadTactics(_ tactics: [String: String]) { tuner.preload(tactics) }

    /// Compiled graphs run once on seeded inputs when asked to prepare a shape, so that their layers' tactics
    /// are timed at build time and go into the plan.
    public func compile(_ graph: Graph) throws -> any GraphExecutable {
        try CompiledGraph(graph: graph, device: self, preparesByRunning: tuner.options.level > 0)
    }

    public func supports(_ node: Node) -> Bool { kernels[node.kind] != nil }

    public func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel {
        guard let factory = kernels[node.kind] else {
            throw KilnError.unsupported("the CPU backend has no kernel for layer kind '\(node.kind)'")
        }
        return try factory(node.layer, CPUKernelEnvironment(subgraphs: subgraphs, tuner: tuner))
    }

    /// Every layer kind this backend implements.
    public var supportedKinds: [LayerKind] { kernels.keys.sorted() }
}
