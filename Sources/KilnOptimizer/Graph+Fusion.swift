import KilnIR

extension Graph {
    /// Offers each node in turn to `rewrite`; after a rewrite the same index is offered again (it now holds
    /// the rewritten node), otherwise the walk moves on. Returns whether anything changed.
    mutating func rewriteEachNode(_ rewrite: (Int, inout Graph) throws -> Bool) rethrows -> Bool {
        var changed = false
        var index = 0
        while index < nodes.count {
            if try rewrite(index, &self) {
                changed = true
            } else {
                index += 1
            }
        }
        return changed
    }

    /// `base`, or `base_2`, `base_3`, ... : a value name no initializer, input or typed value uses yet.
    func freshName(_ base: String) -> String {
        func taken(_ n: String) -> Bool {
            initializers[n] != nil || valueTypes[n] != nil || inputs.contains { $0.name == n }
                || outputs.contains { $0.name == n }
        }
        var name = base
        var k = 2
        while taken(name) {
            name = "\(base)_\(k)"
            k += 1
        }
        return name
    }

    /// Adds a constant under a fresh name derived from `base` and returns the name.
    mutating func addConstant(_ tensor: Tensor, named base: String) -> String {
        let name = freshName(base)
        initializers[name] = tensor
        valueTypes[name] = .tensor(tensor.type)
        return name
    }

    /// Index of the only node that reads `value`, when exactly one node reads it once and it is no graph
    /// output: then a fusion may make the value disappear.
    func soleConsumer(of value: String, _ uses: [String: Int]) -> Int? {
        guard uses[value] == 1, !outputs.contains(where: { $0.name == value }) else { return nil }
        return nodes.firstIndex { $0.inputs.contains(value) }
    }

    /// Replaces `producer` and its sole `consumer` by `fused`, which takes the consumer's place in the node
    /// order (it may read values the consumer reads, computed after the producer). The producer's output,
    /// now internal, loses its recorded type.
    mutating func fuse(producer: Int, consumer: Int, into fused: Node, removing value: String) {
        nodes[consumer] = fused
        nodes.remove(at: producer)
        valueTypes[value] = nil
    }
}

extension Graph {
    /// Replaces the matched nodes `covered` by one node computing `layer` from `inputs`: it takes the place of
    /// `root` (the node producing the pattern's result, so every input is computed before it) and keeps its
    /// outputs; the other nodes go, with their outputs' recorded types. The name lists the covered nodes.
    mutating func replace(covering covered: Set<Int>, root: Int, with layer: any Layer, inputs: [String]) {
        let order = covered.union([root]).sorted()
        var node = nodes[root]
        node.name = order.map { nodes[$0].name }.joined(separator: " + ")
        node.layer = layer
        node.inputs = inputs
        for i in order where i != root {
            for output in nodes[i].outputs { valueTypes[output] = nil }
        }
        nodes[root] = node
        for i in order.reversed() where i != root { nodes.remove(at: i) }
    }
}

/// Whether a convolution or matMul of this element type runs through the float kernels that implement
/// epilogues and folded weights.
func isFusibleFloat(_ dtype: DType?) -> Bool {
    dtype == .float32 || dtype == .float16 || dtype == .bfloat16
}

/// `conv1 + bn1`: the ONNX nodes a fused layer covers, for `kiln inspect`.
func fusedName(_ a: Node, _ b: Node) -> String { "\(a.name) + \(b.name)" }

/// A constant's value for each of `channels` channels (axis 1 of a rank-`rank` value) when it broadcasts along
/// every other axis (`[C, 1, 1]`, `[1, C, 1, 1]`, a one-element tensor); nil otherwise.
func channelValues(_ constant: Tensor, rank: Int, channels: Int) -> [Double]? {
    guard rank >= 2, constant.rank <= rank, constant.dtype.isFloatingPoint,
        let values = try? constant.doubleValues()
    else { return nil }
    let aligned = [Int](repeating: 1, count: rank - constant.rank) + constant.shape
    guard aligned.indices.allSatisfy({ $0 == 1 || aligned[$0] == 1 }) else { return nil }
    if aligned[1] == channels { return values }
    return aligned[1] == 1 ? [Double](repeating: values[0], count: channels) : nil
}
