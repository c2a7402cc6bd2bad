import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCPU

/// The fused pointwise loop against the unfused layers run one by one, on fresh random inputs: the results
/// must be the same bits, and the loop (not the step-by-step fallback) must be what ran.
@Suite struct FusedPointwiseLoopTests {
    typealias Step = FusedPointwiseLayer.Step

    /// Each step run by its own layer's kernel, as the unfused graph would.
    private func stepByStep(_ layer: FusedPointwiseLayer, _ inputs: [Tensor]) throws -> Tensor {
        var results: [Tensor] = []
        for step in layer.steps {
            let operands: [Value?] = step.operands.map { operand in
                switch operand {
                case .input(let i): .tensor(inputs[i])
                case .step(let s): .tensor(results[s])
                }
            }
            results.append(try LayerRunner.run(step.layer, inputs: operands)[0].asTensor())
        }
        return results[results.count - 1]
    }

    private func bits(_ t: Tensor) -> [UInt64] {
        t.dtype == .float64
            ? t.scalars(as: Double.self).map(\.bitPattern) : t.scalars(as: Float.self).map { UInt64($0.bitPattern) }
    }

    /// How many elements differ in their bits (the count of elements, when the counts differ).
    private func differences(_ a: Tensor, _ b: Tensor) -> Int {
        guard a.count == b.count else { return max(a.count, b.count) }
        return zip(bits(a), bits(b)).filter { $0 != $1 }.count
    }

    /// Runs the chain through the loop and through the fused kernel, and both against the unfused steps.
    private func check(
        _ steps: [Step], _ shapes: [[Int]], range: ClosedRange<Float> = -2...2, dtype: DType = .float32
    )
        throws
    {
        let seed = UInt64.random(in: 0...UInt64.max)
        var generator = SeededGenerator(seed: seed)
        let inputs = try shapes.map { try Tensor.random($0, in: range, using: &generator).cast(to: dtype) }
        let layer = FusedPointwiseLayer(steps: steps)
        let expected = try stepByStep(layer, inputs)
        let loop = try #require(FusedPointwiseLoop(layer))
        for threads in [1, 2] {
            let direct = try #require(try loop.run(inputs.map { .tensor($0) }, threads: threads), "the loop declined")
            #expect(direct.shape == expected.shape, "seed \(seed)")
            #expect(differences(direct, expected) == 0, "\(layer) on \(shapes), \(threads) threads, seed \(seed)")
        }
        let kernel = try LayerRunner.run(layer, inputs: inputs.map { .tensor($0) })[0].asTensor()
        #expect(differences(kernel, expected) == 0, "the fused kernel, seed \(seed)")
    }

    /// Squeeze-and-excitation's tail: a per-channel gate on a feature map, a bias and ReLU.
    @Test func perChannelGate() throws {
        try check(
            [
                Step(layer: UnaryLayer(.sigmoid), operands: [.input(1)]),
                Step(layer: BinaryLayer(.mul), operands: [.input(0), .step(0)]),
                Step(layer: BinaryLayer(.add), operands: [.step(1), .input(2)]),
                Step(layer: UnaryLayer(.relu), operands: [.step(2)]),
            ], [[2, 24, 7, 9], [2, 24, 1, 1], [24, 1, 1]])
    }

    /// Rows longer than a chunk with a bias along them, a scalar, and the tanh GELU.
    @Test func rowBiasAcrossChunks() throws {
        try check(
            [
                Step(layer: BinaryLayer(.add), operands: [.input(0), .input(1)]),
                Step(layer: UnaryLayer(.gelu(tanh: true)), operands: [.step(0)]),
                Step(layer: BinaryLayer(.mul), operands: [.input(2), .step(1)]),
                Step(layer: BinaryLayer(.sub), operands: [.step(2), .input(0)]),
            ], [[3, 5, 1000], [1000], [1]])
    }

    /// A long flat chain through many functions, large enough to run on several threads.
    @Test func manyFunctionsFlat() throws {
        let shape = [70001]
        try check(
            [
                Step(layer: UnaryLayer(.abs), operands: [.input(0)]),
                Step(layer: BinaryLayer(.pow), operands: [.step(0), .input(1)]),
                Step(layer: BinaryLayer(.div), operands: [.step(1), .input(1)]),
                Step(layer: BinaryLayer(.max), operands: [.step(2), .input(0)]),
                Step(layer: BinaryLayer(.min), operands: [.step(3), .input(1)]),
                Step(layer: BinaryLayer(.mod(fmod: true)), operands: [.step(4), .input(1)]),
                Step(layer: BinaryLayer(.prelu), operands: [.input(0), .step(5)]),
                Step(layer: UnaryLayer(.hardSwish), operands: [.step(6)]),
                Step(layer: UnaryLayer(.softplus), operands: [.step(7)]),
                Step(layer: UnaryLayer(.leakyRelu(alpha: 0.1)), operands: [.step(8)]),
                Step(layer: UnaryLayer(.erf), operands: [.step(9)]),
                Step(layer: UnaryLayer(.gelu(tanh: false)), operands: [.step(10)]),
            ], [shape, shape], range: 0.5...2)
    }

    /// Neither input has the output's shape; float64 keeps its own precision.
    @Test func outerProductInDouble() throws {
        let steps = [
            Step(layer: BinaryLayer(.mul), operands: [.input(0), .input(1)]),
            Step(layer: UnaryLayer(.tanh), operands: [.step(0)]),
            Step(layer: BinaryLayer(.add), operands: [.step(1), .input(0)]),
        ]
        try check(steps, [[4, 1, 600], [1, 5, 600]], dtype: .float64)
        try check(steps, [[4, 1, 6], [1, 5, 1]])
    }

    /// One-element inputs: every step, the last included, computes a single value.
    @Test func scalarsOnly() throws {
        try check(
            [
                Step(layer: BinaryLayer(.add), operands: [.input(0), .input(1)]),
                Step(layer: UnaryLayer(.exp), operands: [.step(0)]),
            ], [[1, 1], [1]])
    }

    /// What the loop does not take runs step by step, with the same results.
    @Test func otherChainsFallBack() throws {
        var generator = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
        let x = Tensor.random([4, 6], using: &generator)
        let y = Tensor.random([6], using: &generator)

        let select = FusedPointwiseLayer(steps: [
            Step(layer: BinaryLayer(.greater), operands: [.input(0), .input(1)]),
            Step(layer: SelectLayer(), operands: [.step(0), .input(0), .input(1)]),
        ])
        #expect(FusedPointwiseLoop(select) == nil)
        let selected = try LayerRunner.run(select, inputs: [.tensor(x), .tensor(y)])[0].asTensor()
        let selectExpected = try stepByStep(select, [x, y])
        #expect(differences(selected, selectExpected) == 0)

        // Half-precision steps round between layers; the loop would not, so it declines them.
        let chain = FusedPointwiseLayer(steps: [
            Step(layer: BinaryLayer(.mul), operands: [.input(0), .input(1)]),
            Step(layer: UnaryLayer(.exp), operands: [.step(0)]),
        ])
        let halves = try [x.cast(to: .float16), y.cast(to: .float16)]
        let loop = try #require(FusedPointwiseLoop(chain))
        #expect(try loop.run(halves.map { .tensor($0) }, threads: 1) == nil)
        let half = try LayerRunner.run(chain, inputs: halves.map { .tensor($0) })[0].asTensor()
        let halfExpected = try stepByStep(chain, halves)
        #expect(half.dtype == .float16 && half.scalars(as: Float16.self) == halfExpected.scalars(as: Float16.self))

        // A last step that does not read every input has a smaller shape than the broadcast of them all.
        let aside = FusedPointwiseLayer(steps: [
            Step(layer: UnaryLayer(.exp), operands: [.input(0)]),
            Step(layer: UnaryLayer(.relu), operands: [.input(1)]),
        ])
        #expect(try #require(FusedPointwiseLoop(aside)).run([.tensor(x), .tensor(y)], threads: 1) == nil)
        let relu = try LayerRunner.run(aside, inputs: [.tensor(x), .tensor(y)])[0].asTensor()
        let asideExpected = try stepByStep(aside, [x, y])
        #expect(relu.shape == [6] && differences(relu, asideExpected) == 0)
    }
}
