import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// If, Loop, Scan and SequenceMap, with bodies built from identity layers so the expected results follow
/// from the control flow alone.
struct ControlFlowTests {
    private func identity(_ input: String, _ output: String) -> Node {
        Node(name: output, layer: IdentityLayer(), inputs: [input], outputs: [output])
    }

    @Test func ifTakesTheBranchThatMatchesTheCondition() throws {
        var gen = SeededGenerator(seed: 1)
        let a = Tensor.random([2, 3], using: &gen)
        let b = Tensor.random([2, 3], using: &gen)
        // The branches read the If's own inputs through captured names of the enclosing graph.
        let thenBranch = Graph(name: "then", outputs: [GraphValue(name: "t", type: nil)], nodes: [identity("in1", "t")])
        let elseBranch = Graph(name: "else", outputs: [GraphValue(name: "e", type: nil)], nodes: [identity("in2", "e")])
        let layer = IfLayer(thenBranch: thenBranch, elseBranch: elseBranch)
        for (flag, expected) in [(true, a), (false, b)] {
            let out = try LayerRunner.run(
                layer, inputs: [.tensor(Tensor(scalar: flag)), .tensor(a), .tensor(b)])[0].asTensor()
            #expect(Comparison.mismatch(out, expected) == nil)
        }
    }

    @Test func loopCarriesValuesAndStacksScanOutputs() throws {
        var gen = SeededGenerator(seed: 2)
        let x = Tensor.random([3], using: &gen)
        let body = Graph(
            name: "body",
            inputs: [
                GraphValue(name: "i", type: .tensor(TensorType(.int64, []))),
                GraphValue(name: "c", type: .tensor(TensorType(.bool, []))),
                GraphValue(name: "x", type: .tensor(TensorType(.float32, [3]))),
            ],
            outputs: [
                GraphValue(name: "c_out", type: nil), GraphValue(name: "x_out", type: nil),
                GraphValue(name: "i_out", type: nil),
            ],
            nodes: [identity("c", "c_out"), identity("x", "x_out"), identity("i", "i_out")])
        let outs = try LayerRunner.run(
            LoopLayer(body: body),
            inputs: [.tensor(Tensor(scalar: Int64(4))), .tensor(Tensor(scalar: true)), .tensor(x)],
            outputCount: 2)
        #expect(Comparison.mismatch(try outs[0].asTensor(), x) == nil)
        let iterations = try outs[1].asTensor()
        #expect(iterations.shape == [4])
        #expect(try iterations.int64Values() == [0, 1, 2, 3])
        let types = try LoopLayer(body: body).inferTypes([
            LayerInput(type: .tensor(TensorType(.int64, []))), LayerInput(type: .tensor(TensorType(.bool, []))),
            LayerInput(type: .tensor(TensorType(.float32, [3]))),
        ])
        #expect(types[0] == .tensor(TensorType(.float32, [3])))
    }

    @Test(arguments: [false, true]) func scanSlicesAlongTheAxisInEitherDirection(reversed: Bool) throws {
        var gen = SeededGenerator(seed: 3)
        let state = Tensor.random([2], using: &gen)
        let input = Tensor.random([2, 4], using: &gen)
        let body = Graph(
            name: "body",
            inputs: [GraphValue(name: "s", type: nil), GraphValue(name: "x", type: nil)],
            outputs: [GraphValue(name: "s_out", type: nil), GraphValue(name: "y", type: nil)],
            nodes: [identity("s", "s_out"), identity("x", "y")])
        // Scanning axis 1 and stacking on axis 1 rebuilds the input (reversed when the input is read backward).
        let layer = ScanLayer(
            body: body, numScanInputs: 1, inputAxes: [1], inputReversed: [reversed], outputAxes: [1],
            outputReversed: [false])
        let outs = try LayerRunner.run(layer, inputs: [.tensor(state), .tensor(input)], outputCount: 2)
        #expect(Comparison.mismatch(try outs[0].asTensor(), state) == nil)
        let values = input.scalars(as: Float.self)
        let expected = (0..<2).flatMap { r in (0..<4).map { c in values[r * 4 + (reversed ? 3 - c : c)] } }
        #expect(Comparison.mismatch(try outs[1].asTensor(), Tensor(shape: [2, 4], scalars: expected)) == nil)
    }

    @Test func batchedScanHonoursSequenceLengths() throws {
        var gen = SeededGenerator(seed: 5)
        let state = Tensor.random([2, 1], using: &gen)
        let input = Tensor.random([2, 3, 2], using: &gen)
        let body = Graph(
            name: "body",
            inputs: [GraphValue(name: "s", type: nil), GraphValue(name: "x", type: nil)],
            outputs: [GraphValue(name: "s_out", type: nil), GraphValue(name: "y", type: nil)],
            nodes: [identity("s", "s_out"), identity("x", "y")])
        let layer = ScanLayer(
            body: body, numScanInputs: 1, inputAxes: [0], inputReversed: [false], outputAxes: [0],
            outputReversed: [false], batched: true)
        let lengths = Tensor(shape: [2], scalars: [Int64(3), 1])
        let outs = try LayerRunner.run(
            layer, inputs: [.tensor(lengths), .tensor(state), .tensor(input)], outputCount: 2)
        let values = input.scalars(as: Float.self)
        // Batch 1 keeps its first step and is zero-padded after it.
        let expected = Array(values[0..<6]) + Array(values[6..<8]) + [0, 0, 0, 0]
        #expect(Comparison.mismatch(try outs[1].asTensor(), Tensor(shape: [2, 3, 2], scalars: expected)) == nil)
        #expect(Comparison.mismatch(try outs[0].asTensor(), state) == nil)
    }

    @Test func sequenceMapAppliesTheBodyToEachElement() throws {
        var gen = SeededGenerator(seed: 4)
        let elements = [Tensor.random([2], using: &gen), Tensor.random([3], using: &gen)]
        let extra = Tensor.random([1], using: &gen)
        let body = Graph(
            name: "body", inputs: [GraphValue(name: "e", type: nil), GraphValue(name: "t", type: nil)],
            outputs: [GraphValue(name: "e_out", type: nil), GraphValue(name: "t_out", type: nil)],
            nodes: [identity("e", "e_out"), identity("t", "t_out")])
        let outs = try LayerRunner.run(
            SequenceMapLayer(body: body),
            inputs: [.sequence(elements.map { .tensor($0) }, element: nil), .tensor(extra)], outputCount: 2)
        let first = try outs[0].asSequence()
        #expect(first.count == 2)
        #expect(Comparison.mismatch(first[1], .tensor(elements[1])) == nil)
        #expect(try outs[1].asSequence().count == 2)
    }
}
