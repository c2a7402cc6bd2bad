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
    /// Whether `prepare` runs the graph once (so kernels that choose tactics on their first run choose them).
    let preparesByRunning: Bool

    public init(graph: Graph, device: any Device, preparesByRunning: Bool = false) throws {
        self.graph = graph
        self.preparesByRunning = preparesByRunning
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

    /// Runs the graph once on seeded inputs of these shapes, when the device asked for it: its kernels then
    /// choose their tactics now (at build time, for the plan) rather than on the first inference. Inputs are
    /// uniform in [-1, 1) for floats and zero for everything else; a graph that such values cannot run (say an
    /// index out of range) is left to choose on its first real inference.
    public func prepare(inputShapes: [[Int]]) throws {
        guard preparesByRunning, inputShapes.count == graph.inputs.count else { return }
        var random = SeededGenerator(seed: 0x6B69_6C6E)
        var inputs: [Value] = []
        for (info, shape) in zip(graph.inputs, inputShapes) {
            guard let dtype = info.type?.tensorType?.dtype, dtype != .string else { return }
            var tensor = Tensor(zeros: dtype, shape: shape)
            if dtype.isFloatingPoint {
                let values = (0..<tensor.count).map { _ in Float(random.unit() * 2 - 1) }
                tensor = try Tensor(shape: shape, scalars: values).cast(to: dtype)
            }
            inputs.append(.tensor(tensor))
        }
        _ = try? run(inputs, outer: nil)
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
