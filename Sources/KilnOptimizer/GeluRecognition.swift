import KilnIR

/// Recognizes GELU written out in primitive layers, as exporters emit it, and replaces the pattern by one
/// `pointwise.unary[op=gelu]` (which epilogue fusion then folds into the matMul or convolution before it):
///
/// - erf form: `0.5 · x · (1 + erf(x / √2))` (the division may be a multiplication by 1/√2);
/// - tanh form: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` (x³ as `Pow(x, 3)` or `x · x · x`).
///
/// The products may be associated in any order (`(0.5 · x) · a`, `x · (0.5 · a)`, ...). Every intermediate value
/// must be read only inside the pattern and be no graph output; the constants must match to float32 precision.
public struct GeluRecognition: Pass {
    public let name = "gelu-recognition"
    public init() {}

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        var changed = false
        while let match = findMatch(graph) {
            replace(match, &graph)
            changed = true
        }
        return changed
    }

    /// One occurrence: the input x, the nodes it covers, the node whose output is the GELU, and the form.
    struct Match {
        var input: String
        var nodes: Set<Int>
        var root: Int
        var approximate: Bool
    }

    private func findMatch(_ graph: Graph) -> Match? {
        let view = PatternView(graph)
        for (index, node) in graph.nodes.enumerated() {
            guard let unary = node.layer as? UnaryLayer, node.inputs.count == 1, node.outputs.count == 1 else {
                continue
            }
            if unary.op == .erf, let m = matchErf(index, view) { return m }
            if unary.op == .tanh, let m = matchTanh(index, view) { return m }
        }
        return nil
    }

    /// `erf(x / √2)` at `index`, then the common tail.
    private func matchErf(_ index: Int, _ view: PatternView) -> Match? {
        let argument = view.graph.nodes[index].inputs[0]
        guard let p = view.internalProducer(of: argument), let binary = view.graph.nodes[p].layer as? BinaryLayer,
            view.graph.nodes[p].inputs.count == 2
        else { return nil }
        let inputs = view.graph.nodes[p].inputs
        let x: String
        switch binary.op {
        case .div:
            guard view.isConstant(inputs[1], 2.0.squareRoot()) else { return nil }
            x = inputs[0]
        case .mul:
            guard let (c, other) = view.constantAndOther(inputs), view.isConstant(c, 0.5.squareRoot()) else {
                return nil
            }
            x = other
        default:
            return nil
        }
        return tail(index, x: x, covered: [p, index], approximate: false, view)
    }

    /// `tanh(√(2/π) · (x + 0.044715 · x³))` at `index`, then the common tail.
    private func matchTanh(_ index: Int, _ view: PatternView) -> Match? {
        let argument = view.graph.nodes[index].inputs[0]
        guard let outer = view.product(argument), outer.nodes.count > 0 else { return nil }
        var covered = outer.nodes
        let constants = outer.leaves.filter { view.isConstant($0, (2 / Double.pi).squareRoot()) }
        guard outer.leaves.count == 2, constants.count == 1,
            let sum = outer.leaves.first(where: { $0 != constants[0] }),
            let s = view.internalProducer(of: sum), let add = view.graph.nodes[s].layer as? BinaryLayer, add.op == .add,
            view.graph.nodes[s].inputs.count == 2
        else { return nil }
        covered.insert(s)
        // One addend is x, the other 0.044715 · x³.
        for (x, cubic) in [(0, 1), (1, 0)].map({ (view.graph.nodes[s].inputs[$0], view.graph.nodes[s].inputs[$1]) }) {
            guard let term = view.product(cubic), term.nodes.count > 0 else { continue }
            var leaves = term.leaves
            guard let c = leaves.firstIndex(where: { view.isConstant($0, 0.044715) }) else { continue }
            leaves.remove(at: c)
            var nodes = covered.union(term.nodes)
            if leaves == [x, x, x] {
                return tail(index, x: x, covered: nodes.union([index]), approximate: true, view)
            }
            guard leaves.count == 1, let q = view.internalProducer(of: leaves[0]),
                let pow = view.graph.nodes[q].layer as? BinaryLayer, pow.op == .pow,
                view.graph.nodes[q].inputs == [x, view.graph.nodes[q].inputs[1]],
                view.isConstant(view.graph.nodes[q].inputs[1], 3)
            else { continue }
            nodes.insert(q)
            return tail(index, x: x, covered: nodes.union([index]), approximate: true, view)
        }
        return nil
    }

    /// The shared end `0.5 · x · (1 + f)`, where f is the output of the node at `index`.
    private func tail(_ index: Int, x: String, covered: Set<Int>, approximate: Bool, _ view: PatternView) -> Match? {
        let f = view.graph.nodes[index].outputs[0]
        guard let a = view.soleConsumer(of: f), let add = view.graph.nodes[a].layer as? BinaryLayer, add.op == .add,
            let (one, other) = view.constantAndOther(view.graph.nodes[a].inputs), other == f,
            view.isConstant(one, 1)
        else { return nil }
        // Climb through multiplications until the product's leaves are {x, 1 + f, 0.5}.
        var value = view.graph.nodes[a].outputs[0]
        for _ in 0..<3 {
            guard let m = view.soleConsumer(of: value), let mul = view.graph.nodes[m].layer as? BinaryLayer,
                mul.op == .mul, view.graph.nodes[m].outputs.count == 1
            else { return nil }
            let root = view.graph.nodes[m].outputs[0]
            value = root
            guard let product = view.product(root, isRoot: true) else { continue }
            var leaves = product.leaves
            guard let ix = leaves.firstIndex(of: x) else { continue }
            leaves.remove(at: ix)
            guard let ia = leaves.firstIndex(of: view.graph.nodes[a].outputs[0]) else { continue }
            leaves.remove(at: ia)
            guard leaves.count == 1, view.isConstant(leaves[0], 0.5) else { continue }
            return Match(
                input: x, nodes: covered.union([a]).union(product.nodes), root: m, approximate: approximate)
        }
        return nil
    }

    private func replace(_ match: Match, _ graph: inout Graph) {
        graph.replace(
            covering: match.nodes, root: match.root, with: UnaryLayer(.gelu(tanh: match.approximate)),
            inputs: [match.input])
    }
}

/// Read-only questions a pattern matcher asks about a graph: who produces a value, who reads it, is it a constant.
struct PatternView {
    let graph: Graph
    let producers: [String: Int]
    let uses: [String: Int]

    init(_ graph: Graph) {
        self.graph = graph
        var producers: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producers[output] = i }
        }
        self.producers = producers
        uses = graph.useCounts
    }

    /// The node producing `value`, when the value is read exactly once and is no graph output, so a fusion may
    /// remove it.
    func internalProducer(of value: String) -> Int? {
        guard uses[value] == 1, !graph.outputs.contains(where: { $0.name == value }) else { return nil }
        return producers[value]
    }

    func soleConsumer(of value: String) -> Int? { graph.soleConsumer(of: value, uses) }

    /// Whether `value` is a one-element floating-point constant equal to `target` at float32 precision.
    func isConstant(_ value: String, _ target: Double) -> Bool {
        guard let t = graph.initializers[value], t.count == 1, t.dtype.isFloatingPoint,
            let v = try? t.doubleValues().first
        else { return false }
        return abs(v - target) <= 1e-6 * max(1, abs(target))
    }

    /// For a two-operand node's inputs: the one-element constant and the other operand.
    func constantAndOther(_ inputs: [String]) -> (String, String)? {
        guard inputs.count == 2 else { return nil }
        if graph.initializers[inputs[1]]?.count == 1 { return (inputs[1], inputs[0]) }
        if graph.initializers[inputs[0]]?.count == 1 { return (inputs[0], inputs[1]) }
        return nil
    }

    /// `value` as a product of leaves: multiplication nodes whose outputs are read only inside the product are
    /// expanded (the root's own node too when `isRoot`, whatever reads it). Nil when `value` is no product.
    func product(_ value: String, isRoot: Bool = false) -> (leaves: [String], nodes: Set<Int>)? {
        guard let p = isRoot ? producers[value] : internalProducer(of: value),
            let mul = graph.nodes[p].layer as? BinaryLayer, mul.op == .mul, graph.nodes[p].inputs.count == 2
        else { return nil }
        var leaves: [String] = []
        var nodes: Set<Int> = [p]
        for input in graph.nodes[p].inputs {
            if let inner = product(input) {
                leaves += inner.leaves
                nodes.formUnion(inner.nodes)
            } else {
                leaves.append(input)
            }
        }
        return (leaves, nodes)
    }
}
