import KilnIR
import KilnRuntime

/// Where every value of a specialized graph lives on the device: activations at planned offsets of one
/// arena (liveness over the execution order; one arena per execution context), weights and each node's
/// derived constants in buffers shared by every context, and each node's scratch in the arena. Reshape-like
/// outputs share their input's bytes, and concat inputs are stored inside the concat's output where they can be.
struct CUDAMemoryLayout {
    enum Location {
        case arena(offset: Int)
        case buffer(DeviceBuffer)
    }

    private let nodeInputs: [[String]]
    private let nodeOutputs: [[String]]
    /// Value name -> the value whose bytes hold it directly (a view's input, a concat's output, ...).
    private var holders: [String: String] = [:]
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

    /// `slots` are the values their producers write into a concat's output (`CUDAConcatSlots`): value -> the
    /// concat's output and where the value's first row starts in it; they are stored there whatever else
    /// applies. `placesInputs` off keeps every other concat input in bytes of its own (`--no-fuse
    /// concat-in-place`), `overwritesInputs` off every pointwise output (`--no-fuse pointwise-in-place`).
    init(
        graph: Graph, nodes: [CUDAPlanBuilder.LoweredNode], slots: [String: (value: String, offset: Int)] = [:],
        placesInputs: Bool = true, overwritesInputs: Bool = true
    ) throws {
        nodeInputs = nodes.map(\.node.inputs)
        nodeOutputs = nodes.map(\.node.outputs)
        initializers = graph.initializers
        pendingConstants = nodes.map { $0.lowering?.constants ?? [] }
        constants = nodes.map { _ in [] }
        // Value -> the value whose bytes hold it, and where inside them: views of an input, then concat inputs
        // stored inside the concat's output.
        var parents: [String: (value: String, offset: Int)] = [:]
        for (index, lowered) in nodes.enumerated() {
            for (output, input) in lowered.lowering?.aliases ?? [:] {
                guard output < lowered.node.outputs.count, input < lowered.node.inputs.count else {
                    throw KilnError.runtime("alias \(output) -> \(input) names a missing value (layer \(index))")
                }
                parents[lowered.node.outputs[output]] = (
                    lowered.node.inputs[input], lowered.lowering?.aliasOffsets[output] ?? 0
                )
            }
        }
        for (name, slot) in slots.sorted(by: { $0.key < $1.key }) {
            guard parents[name] == nil else {
                throw KilnError.runtime("'\(name)' is written into '\(slot.value)' but is a view of another value")
            }
            parents[name] = slot
        }
        if placesInputs { Self.placeInputs(graph: graph, nodes: nodes, &parents) }
        if overwritesInputs { Self.overwriteInputs(graph: graph, nodes: nodes, &parents) }
        holders = parents.mapValues(\.value)
        for name in parents.keys {
            var (root, offset) = (name, 0)
            while let parent = parents[root] { (root, offset) = (parent.value, offset + parent.offset) }
            roots[name] = root
            if offset != 0 { rootOffsets[name] = offset }
        }
        // Liveness of every activation root: from the first producer of any value it holds through the last
        // reader. Graph inputs and outputs live throughout so they never share bytes with anything else.
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
            for name in node.outputs where !name.isEmpty {
                let r = root(name)
                if let start = first[r] { first[r] = min(start, index) }
            }
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

    /// Stores each concat input that can be inside the concat's output (`CUDALowering.placements`): a value
    /// a layer of this graph produces into bytes of its own (not a view, not a graph input or weight, not
    /// already stored inside another concat), read once by this concat, at an offset on the arena's
    /// alignment (library kernels were chosen for aligned operands). Its producer then writes it in place and
    /// the concat's copy of it has nothing to do.
    private static func placeInputs(
        graph: Graph, nodes: [CUDAPlanBuilder.LoweredNode], _ parents: inout [String: (value: String, offset: Int)]
    ) {
        var produced: Set<String> = []
        for lowered in nodes {
            defer { produced.formUnion(lowered.node.outputs) }
            guard let placements = lowered.lowering?.placements, let output = lowered.node.outputs.first,
                !output.isEmpty
            else { continue }
            let inputs = lowered.node.inputs
            for (index, offset) in placements.sorted(by: { $0.key < $1.key }) where index < inputs.count {
                let name = inputs[index]
                guard produced.contains(name), parents[name] == nil, graph.initializers[name] == nil,
                    offset % MemoryPlanner.defaultAlignment == 0, inputs.filter({ $0 == name }).count == 1
                else { continue }
                parents[name] = (output, offset)
            }
        }
    }

    /// Writes each pointwise output that may take an input's bytes (`CUDALowering.inPlace`) into them, where
    /// the input is an activation a layer of this graph produced (not a graph input, output or weight) and
    /// nothing stored in the same bytes is read after the layer. The output is not a graph output and not
    /// already stored elsewhere (a view, inside a concat's output).
    private static func overwriteInputs(
        graph: Graph, nodes: [CUDAPlanBuilder.LoweredNode], _ parents: inout [String: (value: String, offset: Int)]
    ) {
        var lastRead: [String: Int] = [:]
        for (index, lowered) in nodes.enumerated() {
            for name in lowered.node.inputs where !name.isEmpty { lastRead[name] = index }
        }
        let boundary = Set(graph.inputs.map(\.name) + graph.outputs.map(\.name))
        var produced: Set<String> = []
        for (index, lowered) in nodes.enumerated() {
            defer { produced.formUnion(lowered.node.outputs) }
            let (inputs, outputs) = (lowered.node.inputs, lowered.node.outputs)
            for (output, input) in (lowered.lowering?.inPlace ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard output < outputs.count, input < inputs.count else { continue }
                let (y, x) = (outputs[output], inputs[input])
                guard !y.isEmpty, !x.isEmpty, parents[y] == nil, !boundary.contains(y) else { continue }
                func root(_ name: String) -> String {
                    var current = name
                    while let parent = parents[current] { current = parent.value }
                    return current
                }
                let bytes = root(x)
                guard produced.contains(bytes), !boundary.contains(bytes), graph.initializers[bytes] == nil,
                    lastRead.allSatisfy({ name, last in last <= index || root(name) != bytes }),
                    !graph.outputs.contains(where: { root($0.name) == bytes })
                else { continue }
                parents[y] = (x, 0)
            }
        }
    }

    /// The value whose bytes hold `name` (itself unless it is a view or stored inside a concat's output), and
    /// where inside them it starts.
    func storage(of name: String) -> (root: String, offset: Int) {
        (roots[name] ?? name, rootOffsets[name] ?? 0)
    }

    /// Whether `name` is stored inside `other`'s bytes (a concat input inside the concat's output), directly
    /// or through values stored inside each other.
    func isStored(_ name: String, inside other: String) -> Bool {
        var current = name
        while let holder = holders[current] {
            if holder == other { return true }
            current = holder
        }
        return false
    }

    /// Where `name`'s bytes start in the arena, or nil for weights and constants.
    func arenaOffset(of name: String) -> Int? {
        let (root, offset) = storage(of: name)
        guard case .arena(let start)? = locations[root] else { return nil }
        return start + offset
    }

    /// Whether `copy` of node `node` moves bytes onto themselves (an input stored in place): nothing to do.
    func copiesInPlace(_ copy: CUDACopy, node: Int) -> Bool {
        guard let source = valueName(copy.source, node: node), let destination = valueName(copy.destination, node: node)
        else { return false }
        let (from, to) = (storage(of: source), storage(of: destination))
        return from.root == to.root && from.offset + copy.sourceOffset == to.offset + copy.destinationOffset
    }

    private func valueName(_ operand: CUDAOperand, node: Int) -> String? {
        switch operand {
        case .input(let i): i < nodeInputs[node].count ? nodeInputs[node][i] : nil
        case .output(let i): i < nodeOutputs[node].count ? nodeOutputs[node][i] : nil
        case .scratch, .constant: nil
        }
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
