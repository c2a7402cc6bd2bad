import KilnIR

/// What a device reports about itself.
public struct DeviceProperties: Sendable, Hashable {
    public var name: String
    public var kind: String
    public var threads: Int

    public init(name: String, kind: String, threads: Int) {
        self.name = name
        self.kind = kind
        self.threads = threads
    }
}

/// A place that runs layers: the CPU, one GPU. The optimizer and builder ask it what it supports; backends
/// implement layer kinds, never ONNX operators.
public protocol Device: AnyObject, Sendable {
    var properties: DeviceProperties { get }
    func supports(_ node: Node) -> Bool
    func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel
    /// Compiles a whole graph. The default runs one host kernel per node (`CompiledGraph`); a device whose
    /// tensors live in its own memory returns its own program, which takes and returns host values.
    func compile(_ graph: Graph) throws -> any GraphExecutable
}

extension Device {
    public func compile(_ graph: Graph) throws -> any GraphExecutable {
        try CompiledGraph(graph: graph, device: self)
    }
}

/// A compiled graph: runs on host values given in graph-input order and returns graph outputs in order.
public protocol GraphExecutable: Sendable {
    func run(_ inputs: [Value], outer: ValueScope?) throws -> [Value]
}
