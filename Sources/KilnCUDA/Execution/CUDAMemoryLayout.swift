import KilnIR
import KilnRuntime

/// Where every value of a specialized graph lives on the device: activations at planned offsets of one
/// arena (liveness over the execution order; one arena per execution context), weights and each node's
/// derived constants in buffers shared by every context, and each node's scratch in the arena. Reshape-like
/// outputs share their input's bytes.
struct CUDAMemoryLayout {
    enum Location {
        case arena(offset: Int)
        case buffer(DeviceBuffer)
    }

    private let nodeInputs: [[String]]
    private let nodeOutputs: [[String]]
    /// Value name -> the value whose bytes it shares (itself unless aliased).
    private var roots: [String: String] = [:]
    /// Value name -> where its bytes start inside its root's, for aliases that view a block of their input.
    private var rootOffsets: [String: Int] = [:]
    private var locations: [String: Location] = [:]
    private var scratchOffsets: [[Int]]
    private var constants: [[DeviceBuffer]]
    private let pendingConstants: [[Tensor]]
    private let initializers: [String: Tensor]
    private(set) var plan: MemoryPlanner.Plan
    private(set) var weightBytes = 0
    private var arena: DeviceBuffer?

    init(graph: Graph, nodes: [CUDAPlanBuilder.LoweredNode]) throws {
        nodeInputs = nodes.map(\.node.inputs)
        nodeOutputs = nodes.map(\.node.outputs)
        initializers = graph.initializers
        pendingConstants = nodes.map { $0.lowering?.constants ?? [] }
        constants = nodes.map { _ in [] }
        for (index, lowered) in nodes.enumerated() {
            for (output, input) in lowered.lowering?.aliases ?? [:] {
                guard output < lowered.node.outputs.count, input < lowered.node.inputs.count else {
                    throw KilnError.runtime("alias \(output) -> \(input) names a missing value (layer \(index))")
                }
                let name = lowered.node.outputs[output]
                let source = lowered.node.inputs[input]
                roots[name] = roots[source] ?? source
                let offset = (rootOffsets[source] ?? 0) + (lowered.lowering?.aliasOffsets[output] ?? 0)
                if offset != 0 { rootOffsets[name] = offset }
            }
        }
        // Liveness of every activation root: defined at its producer, alive through its last reader. Graph
        // inputs and outputs live throughout so they never share bytes with anything else.
        let end = nodes.count
        var first: [String: Int] = [:]
        var last: [String: Int] = [:]
        var bytes: [String: Int] = [:]
        for input in graph.inputs {
            guard let type = graph.type(of: input.name)?.tensorType else { continue }
            first[input.name] = 0
            last[input.name] = end
            bytes[input.name] = Self.byteCount(type)
        }
        for (index, node) in graph.nodes.enumerated() {
            for name in node.outputs where !name.isEmpty && roots[name] == nil {
                first[name] = index
                last[name] = index
                bytes[name] = graph.type(of: name)?.tensorType.map(Self.byteCount) ?? 0
            }
        }
        let rootsCopy = roots
        func root(_ name: String) -> String { rootsCopy[name] ?? name }
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty {
                let r = root(name)
                if last[r] != nil { last[r] = max(last[r] ?? index, index) }
            }
        }
        for output in graph.outputs where last[root(output.name)] != nil { last[root(output.name)] = end }
        let names = first.keys.sorted()
        var requests = names.map {
            MemoryPlanner.Request(bytes: bytes[$0] ?? 0, first: first[$0] ?? 0, last: last[$0] ?? end)
        }
        var scratchIndex: [[Int]] = []
        for (index, lowered) in nodes.enumerated() {
            scratchIndex.append(
                (lowered.lowering?.scratchBytes ?? []).map { size in
                    requests.append(MemoryPlanner.Request(bytes: size, first: index, last: index))
                    return requests.count - 1
                })
        }
        let placed = MemoryPlanner.plan(requests)
        plan = placed
        for (i, name) in names.enumerated() { locations[name] = .arena(offset: placed.offsets[i]) }
        scratchOffsets = scratchIndex.map { $0.map { placed.offsets[$0] } }
    }

    private static func byteCount(_ type: TensorType) -> Int {
        (type.concreteShape ?? []).reduce(1, *) * type.dtype.byteSize
    }

    /// Gives every initializer the nodes read its shared device buffer.
    mutating func bindWeights(_ upload: (String, Tensor) throws -> DeviceBuffer) throws {
        for name in Set(nodeInputs.joined()) where !name.isEmpty && locations[name] == nil {
            guard let tensor = initializers[name] else { continue }
            let buffer = try upload(name, tensor)
            locations[name] = .buffer(buffer)
            weightBytes += tensor.byteCount
        }
    }

    /// Uploads derived constants (once per shape; contexts share them).
    mutating func uploadConstants(on device: CUDADevice) throws {
        for (index, tensors) in pendingConstants.enumerated() {
            constants[index] = try tensors.map { try device.upload($0) }
        }
    }

    /// This layout with an arena of its own (one per execution context).
    func withArena(on device: CUDADevice) throws -> CUDAMemoryLayout {
        var copy = self
        copy.arena = try withErrorContext("allocating \(plan.arenaBytes) bytes of activations") {
            try device.context.allocate(bytes: max(plan.arenaBytes, 256))
        }
        return copy
    }

    /// The device address of a value by name (graph inputs and outputs included).
    func address(ofValue name: String) throws -> UInt64 {
        let root = roots[name] ?? name
        let view = UInt64(rootOffsets[name] ?? 0)
        switch locations[root] {
        case .arena(let offset)?:
            guard let arena else { throw KilnError.runtime("activation memory is not allocated") }
            return arena.address + UInt64(offset) + view
        case .buffer(let buffer)?: return buffer.address + view
        case nil: throw KilnError.runtime("value '\(name)' has no device memory")
        }
    }

    /// The device address of an operand of node `node`.
    func address(of operand: CUDAOperand, node: Int) throws -> UInt64 {
        switch operand {
        case .input(let i):
            guard i < nodeInputs[node].count, !nodeInputs[node][i].isEmpty else {
                throw KilnError.runtime("operand input \(i) is absent")
            }
            return try address(ofValue: nodeInputs[node][i])
        case .output(let i):
            guard i < nodeOutputs[node].count, !nodeOutputs[node][i].isEmpty else {
                throw KilnError.runtime("operand output \(i) is absent")
            }
            return try address(ofValue: nodeOutputs[node][i])
        case .scratch(let i):
            guard i < scratchOffsets[node].count, let arena else { throw KilnError.runtime("no scratch \(i)") }
            return arena.address + UInt64(scratchOffsets[node][i])
        case .constant(let i):
            guard i < constants[node].count else { throw KilnError.runtime("no derived constant \(i)") }
            return constants[node][i].address
        }
    }
}
