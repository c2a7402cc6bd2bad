import Dispatch
import KilnIR

/// A graph with a kernel for every node, in execution order, and the point after which each value can be
/// released. Immutable; `run` may be called from many threads at once.
public final class CompiledGraph: GraphExecutable {
    public let graph: Graph
    let kernels: [any Kernel]
    /// For each node, the values (of this graph) whose last use is that node.
    let releases: [[String]]
    let threads: Int

    public init(graph: Graph, device: any Device) throws {
        self.graph = graph
        threads = device.properties.threads
        let compiler = DeviceSubgraphCompiler(device: device)
        kernels = try graph.nodes.enumerated().map { index, node in
            try withErrorContext("node \(index) '\(node.name)' (\(node.kind))") {
                try device.makeKernel(node, subgraphs: compiler)
            }
        }
        releases = CompiledGraph.lastUses(graph)
    }

    /// Runs the graph on `inputs` (one per graph input, in order) and returns its outputs in order.
    /// `outer` supplies values captured from enclosing graphs.
    public func run(_ inputs: [Value], outer: ValueScope? = nil) throws -> [Value] {
        try run(inputs, outer: outer, onLayer: nil)
    }

    /// One run timing every node with the host clock.
    public func profile(_ inputs: [Value]) throws -> [LayerTiming] {
        var timings: [LayerTiming] = []
        let nodes = graph.nodes
        _ = try run(inputs, outer: nil) { index, milliseconds in
            timings.append(LayerTiming(name: nodes[index].name, kind: nodes[index].kind, milliseconds: milliseconds))
        }
        return timings
    }

    private func run(
        _ inputs: [Value], outer: ValueScope?, onLayer: ((Int, Double) -> Void)?
    ) throws -> [Value] {
        guard inputs.count == graph.inputs.count else {
            throw KilnError.invalidArgument(
                "graph '\(graph.name)' takes \(graph.inputs.count) inputs, got \(inputs.count)")
        }
        let scope = ValueScope(parent: outer)
        for (name, tensor) in graph.initializers { scope.set(name, .tensor(tensor)) }
        for (info, value) in zip(graph.inputs, inputs) { scope.set(info.name, value) }
        let context = KernelContext(scope: scope, threads: threads)
        for (index, node) in graph.nodes.enumerated() {
            let start = onLayer == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try withErrorContext("node \(index) '\(node.name)' (\(node.kind))") {
                let args = try node.inputs.map { name -> Value? in
                    guard !name.isEmpty else { return nil }
                    guard let v = scope.lookup(name) else {
                        throw KilnError.runtime("value '\(name)' is not available")
                    }
                    return v
                }
                let results = try kernels[index].execute(args, context)
                for (i, name) in node.outputs.enumerated() where !name.isEmpty {
                    guard i < results.count else {
                        throw KilnError.runtime("kernel returned \(results.count) outputs, '\(name)' is output \(i)")
                    }
                    scope.set(name, results[i])
                }
            }
            if let onLayer { onLayer(index, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
            for name in releases[index] { scope.remove(name) }
        }
        return try graph.outputs.map { output in
            guard let v = scope.lookup(output.name) else {
                throw KilnError.runtime("graph output '\(output.name)' was not computed")
            }
            return v
        }
    }

    private static func lastUses(_ graph: Graph) -> [[String]] {
        var last: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty { last[name] = i }
            for sub in node.layer.subgraphs { for name in sub.capturedValues { last[name] = i } }
        }
        let kept = Set(graph.outputs.map(\.name)).union(graph.initializers.keys)
        var releases = [[String]](repeating: [], count: graph.nodes.count)
        for (name, i) in last where !kept.contains(name) { releases[i].append(name) }
        return releases
    }
}

struct DeviceSubgraphCompiler: SubgraphCompiler {
    let device: any Device
    func compile(_ graph: Graph) throws -> CompiledGraph { try CompiledGraph(graph: graph, device: device) }
}
