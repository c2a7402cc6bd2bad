import KilnIR

/// Fuses chains of pointwise layers (unary, binary, select, two-input sum/max/min) into one `FusedPointwiseLayer`: a producer whose
/// output only the next pointwise layer reads, and whose shape is that layer's output shape, becomes earlier
/// steps of it. Backends then compute the chain per element in one pass (on the GPU, one generated kernel),
/// with no intermediate tensor. It runs after the epilogue fusion, so what a convolution or matMul can absorb
/// is absorbed there first; chains longer than `maxSteps` are left split.
public struct PointwiseFusion: Pass {
    public let name = "pointwise-fusion"
    public let maxSteps: Int

    public init(maxSteps: Int = 16) { self.maxSteps = maxSteps }

    public func run(_ graph: inout Graph, _ context: PassContext) throws -> Bool {
        try graph.rewriteEachNode { index, graph in fuse(at: index, &graph, context) }
    }

    /// The steps a pointwise node stands for, reading its own inputs in order; nil for other layers.
    static func steps(of node: Node) -> [FusedPointwiseLayer.Step]? {
        if let fused = node.layer as? FusedPointwiseLayer { return fused.steps }
        if let variadic = node.layer as? VariadicLayer, node.inputs.count == 2, !node.inputs.contains(where: \.isEmpty),
            let op = pairwise(variadic.op)
        {
            // Sum, Max or Min of two inputs is the binary op (ReLU6 exported as Max and Min).
            return [FusedPointwiseLayer.Step(layer: BinaryLayer(op), operands: [.input(0), .input(1)])]
        }
        guard node.layer is UnaryLayer || node.layer is BinaryLayer || node.layer is SelectLayer,
            !node.inputs.contains(where: \.isEmpty)
        else { return nil }
        return [FusedPointwiseLayer.Step(layer: node.layer, operands: node.inputs.indices.map { .input($0) })]
    }

    /// The binary op a two-input variadic op computes; nil for mean, which also divides.
    private static func pairwise(_ op: VariadicOp) -> BinaryOp? {
        switch op {
        case .sum: .add
        case .max: .max
        case .min: .min
        case .mean: nil
        }
    }

    private func fuse(at index: Int, _ graph: inout Graph, _ context: PassContext) -> Bool {
        let producer = graph.nodes[index]
        guard producer.outputs.count == 1, let producerSteps = Self.steps(of: producer),
            let shape = graph.type(of: producer.outputs[0])?.tensorType?.shape,
            let c = graph.soleConsumer(of: producer.outputs[0], graph.useCounts)
        else { return false }
        let consumer = graph.nodes[c]
        guard consumer.outputs.count == 1, let consumerSteps = Self.steps(of: consumer) else { return false }
        guard graph.type(of: consumer.outputs[0])?.tensorType?.shape == shape else {
            context.rejected?(producer.name, "\(consumer.name) not fused: it broadcasts to another shape")
            return false
        }
        guard producerSteps.count + consumerSteps.count <= maxSteps else {
            context.rejected?(producer.name, "\(consumer.name) not fused: the chain would exceed \(maxSteps) steps")
            return false
        }
        var inputs: [String] = []
        func input(_ name: String) -> FusedPointwiseLayer.Operand {
            if let i = inputs.firstIndex(of: name) { return .input(i) }
            inputs.append(name)
            return .input(inputs.count - 1)
        }
        var steps: [FusedPointwiseLayer.Step] = []
        for step in producerSteps {
            let operands = step.operands.map { operand -> FusedPointwiseLayer.Operand in
                if case .input(let i) = operand { return input(producer.inputs[i]) }
                return operand
            }
            steps.append(FusedPointwiseLayer.Step(layer: step.layer, operands: operands))
        }
        let produced = FusedPointwiseLayer.Operand.step(producerSteps.count - 1)
        for step in consumerSteps {
            let operands = step.operands.map { operand -> FusedPointwiseLayer.Operand in
                switch operand {
                case .input(let i): consumer.inputs[i] == producer.outputs[0] ? produced : input(consumer.inputs[i])
                case .step(let s): .step(s + producerSteps.count)
                }
            }
            steps.append(FusedPointwiseLayer.Step(layer: step.layer, operands: operands))
        }
        var fused = consumer
        fused.name = fusedName(producer, consumer)
        fused.layer = FusedPointwiseLayer(steps: steps)
        fused.inputs = inputs
        graph.fuse(producer: index, consumer: c, into: fused, removing: producer.outputs[0])
        return true
    }
}
