import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// Sequence and optional kernels checked against list operations done by hand.
struct SequenceTests {
    private func run(_ layer: any Layer, _ inputs: [Value?]) throws -> Value {
        try LayerRunner.run(layer, inputs: inputs)[0]
    }

    @Test func constructInsertEraseAtAndLength() throws {
        var gen = SeededGenerator(seed: 11)
        let t = (0..<3).map { _ in Tensor.random([2, 2], using: &gen) }
        let seq = try run(SequenceLayer(op: .construct), t.map { .tensor($0) })
        #expect(try seq.asSequence().count == 3)
        let extra = Tensor.random([2, 2], using: &gen)
        let inserted = try run(SequenceLayer(op: .insert), [seq, .tensor(extra), .tensor(Tensor(scalar: Int64(-1)))])
        let list = try inserted.asSequence()
        #expect(list.count == 4)
        #expect(Comparison.mismatch(list[2], .tensor(extra)) == nil)
        let erased = try run(SequenceLayer(op: .erase), [inserted, .tensor(Tensor(scalar: Int64(0)))])
        #expect(Comparison.mismatch(try erased.asSequence()[0], .tensor(t[1])) == nil)
        let at = try run(SequenceLayer(op: .at), [erased, .tensor(Tensor(scalar: Int32(-1)))])
        #expect(Comparison.mismatch(at, .tensor(t[2])) == nil)
        let length = try run(SequenceLayer(op: .length), [erased]).asTensor()
        #expect(try length.int64Values() == [3])
        #expect(throws: KilnError.self) {
            try run(SequenceLayer(op: .at), [erased, .tensor(Tensor(scalar: Int64(3)))])
        }
    }

    @Test(arguments: [0, 1, -1]) func splitThenConcatRestoresTheTensor(axis: Int) throws {
        var gen = SeededGenerator(seed: 12)
        let x = Tensor.random([3, 4, 2], using: &gen)
        let pieces = try run(SplitToSequenceLayer(axis: axis, keepDims: true), [.tensor(x)])
        let dim = x.shape[axis < 0 ? axis + 3 : axis]
        #expect(try pieces.asSequence().count == dim)
        let joined = try run(ConcatFromSequenceLayer(axis: axis, newAxis: false), [pieces]).asTensor()
        #expect(Comparison.mismatch(joined, x) == nil)
        let squeezed = try run(SplitToSequenceLayer(axis: axis, keepDims: false), [.tensor(x)])
        let stacked = try run(ConcatFromSequenceLayer(axis: axis, newAxis: true), [squeezed]).asTensor()
        #expect(Comparison.mismatch(stacked, x) == nil)
    }

    @Test func splitSizesAndTypeInference() throws {
        var gen = SeededGenerator(seed: 13)
        let x = Tensor.random([5, 2], using: &gen)
        let pieces = try run(
            SplitToSequenceLayer(axis: 0, keepDims: true), [.tensor(x), .tensor(Tensor(scalar: Int64(2)))])
        #expect(try pieces.asSequence().map { try $0.asTensor().shape } == [[2, 2], [2, 2], [1, 2]])
        let types = try SplitToSequenceLayer(axis: 1, keepDims: false).inferTypes([
            LayerInput(type: .tensor(TensorType(.float32, [.symbol("N"), 2])))
        ])
        #expect(types[0] == .sequence(.tensor(TensorType(.float32, [.symbol("N")]))))
    }

    @Test func optionalWrapsAndUnwraps() throws {
        var gen = SeededGenerator(seed: 14)
        let x = Tensor.random([2], using: &gen)
        let wrapped = try run(OptionalLayer(op: .wrap(nil)), [.tensor(x)])
        #expect(try run(OptionalLayer(op: .hasElement), [wrapped]).asTensor().scalars(as: Bool.self) == [true])
        #expect(Comparison.mismatch(try run(OptionalLayer(op: .getElement), [wrapped]), .tensor(x)) == nil)
        let empty = try run(OptionalLayer(op: .wrap(.tensor(TensorType(.float32, nil)))), [])
        #expect(try run(OptionalLayer(op: .hasElement), [empty]).asTensor().scalars(as: Bool.self) == [false])
        #expect(try run(OptionalLayer(op: .hasElement), [nil]).asTensor().scalars(as: Bool.self) == [false])
        #expect(throws: KilnError.self) { try run(OptionalLayer(op: .getElement), [empty]) }
    }
}
