import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

/// Networks defined in Swift: the graph they give runs as written, and mistakes are errors that name the value.
struct NetworkBuilderTests {
    @Test func aTwoLayerPerceptronComputesWhatItSays() throws {
        var generator = SeededGenerator(seed: 9)
        let w = Tensor.random([4, 3], using: &generator)
        let b = Tensor.random([3], using: &generator)
        var network = NetworkBuilder(name: "mlp")
        let x = network.addInput("x", .float32, [.symbol("batch"), 4])
        let y = try network.relu(
            try network.matMul(x, network.addConstant("w", w), bias: network.addConstant("b", b)))
        try network.markOutput(y, as: "y")
        let graph = try network.build()
        #expect(graph.outputs.map(\.name) == ["y"])
        #expect(graph.outputs.first?.type?.description == "f32[batch,3]")

        let input = Tensor.random([2, 4], using: &generator)
        let outputs = try Builder.build(graph, device: CPUDevice()).makeContext().run(["x": .tensor(input)])
        guard case .tensor(let got)? = outputs["y"] else {
            Issue.record("no output y")
            return
        }
        let (xs, ws, bs) = (input.scalars(as: Float.self), w.scalars(as: Float.self), b.scalars(as: Float.self))
        var want: [Float] = []
        for row in 0..<2 {
            for col in 0..<3 {
                let dot = (0..<4).reduce(Float(0)) { $0 + xs[row * 4 + $1] * ws[$1 * 3 + col] }
                want.append(max(0, dot + bs[col]))
            }
        }
        let values = got.scalars(as: Float.self)
        #expect(values.count == want.count)
        for (g, e) in zip(values, want) { #expect(abs(g - e) <= 1e-5 * max(1, abs(e))) }
    }

    @Test func mistakesAreErrors() throws {
        var network = NetworkBuilder()
        let x = network.addInput("x", .float32, [2, 4])
        let w = network.addConstant("w", Tensor(shape: [5, 3], scalars: [Float](repeating: 1, count: 15)))
        // Inner dimensions 4 and 5 do not match: the layer is refused and the network is unchanged.
        #expect(throws: KilnError.self) { try network.matMul(x, w) }
        var other = NetworkBuilder(name: "other")
        let stranger = other.addInput("z", .float32, [2])
        let error = #expect(throws: KilnError.self) { try network.relu(stranger) }
        #expect(error?.message.contains("'z' is not a value of network") == true)
        #expect(throws: KilnError.self) { try network.build() }  // no outputs yet
        let y = try network.relu(x)
        #expect(throws: KilnError.self) { try network.markOutput(y, as: "x") }  // a taken name
        try network.markOutput(y)
        #expect(try network.build().nodes.count == 1)
    }
}

/// Inputs that once trapped: a fused step reading a negative operand, one value marked as two outputs, a
/// compiled shape that does not fit its input.
struct HostileInputTests {
    @Test func aNegativeFusedOperandIsAnError() {
        let layer = FusedPointwiseLayer(steps: [.init(layer: UnaryLayer(.relu), operands: [.input(-1)])])
        let input = LayerInput(type: .tensor(TensorType(.float32, dims: [2])))
        #expect(throws: KilnError.self) { try layer.inferTypes([input]) }
        let step = FusedPointwiseLayer(steps: [.init(layer: UnaryLayer(.relu), operands: [.step(-1)])])
        #expect(throws: KilnError.self) { try step.inferTypes([input]) }
    }

    /// Found by mutating plans: an integer start with a fractional float delta divided by zero.
    @Test func rangeOfMixedDtypesIsAnError() {
        let inputs: [Value] = [
            .tensor(Tensor(scalar: Int8(1))), .tensor(Tensor(scalar: Float(5))), .tensor(Tensor(scalar: Float(0.5))),
        ]
        #expect(throws: KilnError.self) { try LayerRunner.run(RangeLayer(), inputs: inputs, outputCount: 1) }
    }

    @Test func oneValueMarkedTwiceRuns() throws {
        var network = NetworkBuilder()
        let x = network.addInput("x", .float32, [2])
        let y = try network.relu(x)
        try network.markOutput(y)
        try network.markOutput(y)
        let engine = try Builder.build(try network.build(), device: CPUDevice())
        let outputs = try engine.makeContext().run(["x": .tensor(Tensor(shape: [2], scalars: [Float(-1), 2]))])
        #expect(outputs.count == 1)
    }

    @Test func aCompiledShapeMustFitItsInput() throws {
        var network = NetworkBuilder()
        let x = network.addInput("x", .float32, [.symbol("batch"), 4])
        try network.markOutput(try network.relu(x))
        let engine = try Builder.build(try network.build(), device: CPUDevice())
        #expect(try engine.orderedShapes([.init(name: "x", dims: [8, 4])]) == [[8, 4]])
        #expect(throws: KilnError.self) { try engine.orderedShapes([.init(name: "x", dims: [8, 5])]) }
        #expect(throws: KilnError.self) { try engine.orderedShapes([.init(name: "x", dims: [8])]) }
        #expect(throws: KilnError.self) { try engine.orderedShapes([.init(name: "x", dims: [1 << 40, 1 << 40])]) }
    }
}
