import KilnIR

/// One compiled layer, ready to run. Kernels are immutable and may be shared by many execution contexts.
public protocol Kernel: Sendable {
    /// Computes the node's outputs from its inputs (nil for an omitted optional input). Returns one value per
    /// node output, in order; it may return fewer when trailing optional outputs are not computed.
    func execute(_ inputs: [Value?], _ context: KernelContext) throws -> [Value]
}

/// What a kernel may use while it runs: the values of enclosing graphs (for control-flow bodies) and the
/// degree of parallelism allowed.
public struct KernelContext {
    public let scope: ValueScope
    public let threads: Int

    public init(scope: ValueScope, threads: Int) {
        self.scope = scope
        self.threads = threads
    }
}

/// The values live during one graph execution, chained to the scope of the enclosing graph so that subgraph
/// bodies can read captured values. Used by one thread at a time.
public final class ValueScope {
    public let parent: ValueScope?
    var values: [String: Value] = [:]

    public init(parent: ValueScope? = nil) { self.parent = parent }

    public func lookup(_ name: String) -> Value? {
        var scope: ValueScope? = self
        while let s = scope {
            if let v = s.values[name] { return v }
            scope = s.parent
        }
        return nil
    }

    public func set(_ name: String, _ value: Value) { values[name] = value }
    func remove(_ name: String) { values[name] = nil }
}

/// Compiles control-flow bodies with the same device as the enclosing graph.
public protocol SubgraphCompiler {
    func compile(_ graph: Graph) throws -> CompiledGraph
}
