import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@Suite struct IndexingTests {
    @Test func gatherMatchesNaive() throws {
        var g = SeededGenerator(seed: 11)
        let data = Tensor.random([3, 4, 5], using: &g)
        let idx: [Int64] = [3, -1, 0, 2, 2, 1]
        let y = try LayerRunner.run(GatherLayer(axis: 1), data, Tensor(shape: [2, 3], scalars: idx))
        #expect(y.shape == [3, 2, 3, 5])
        let d = data.scalars(as: Float.self)
        let out = y.scalars(as: Float.self)
        for a in 0..<3 {
            for (k, i) in idx.enumerated() {
                let j = i < 0 ? Int(i) + 4 : Int(i)
                for c in 0..<5 { #expect(out[(a * 6 + k) * 5 + c] == d[(a * 4 + j) * 5 + c]) }
            }
        }
        #expect(throws: KilnError.self) { try LayerRunner.run(GatherLayer(axis: 1), data, Tensor.int64([4])) }
    }

    @Test func gatherElementsAndND() throws {
        let data = Tensor(shape: [2, 2], scalars: [Int32(1), 2, 3, 4])
        let ge = try LayerRunner.run(
            GatherElementsLayer(axis: 1), data, Tensor(shape: [2, 2], scalars: [Int64(0), 0, 1, 0]))
        #expect(ge.scalars(as: Int32.self) == [1, 1, 4, 3])
        let nd = try LayerRunner.run(GatherNDLayer(batchDims: 0), data, Tensor(shape: [2, 1], scalars: [Int64(1), 0]))
        #expect(nd.shape == [2, 2])
        #expect(nd.scalars(as: Int32.self) == [3, 4, 1, 2])
        let cube = Tensor(shape: [2, 2, 2], scalars: (0..<8).map { Float($0) })
        let batched = try LayerRunner.run(
            GatherNDLayer(batchDims: 1), cube, Tensor(shape: [2, 1], scalars: [Int64(1), 0]))
        #expect(batched.scalars(as: Float.self) == [2, 3, 4, 5])
    }

    @Test func scatterReductionsApplyDuplicatesInOrder() throws {
        var g = SeededGenerator(seed: 12)
        let data = Tensor.random([3, 4], using: &g)
        let updates = Tensor.random([1, 3], using: &g)
        let idx = Tensor(shape: [1, 3], scalars: [Int64(1), 1, -1])
        let y = try LayerRunner.run(ScatterElementsLayer(axis: 1, reduction: .add), data, idx, updates)
        var expected = data.scalars(as: Float.self)
        let u = updates.scalars(as: Float.self)
        expected[1] += u[0]
        expected[1] += u[1]
        expected[3] += u[2]
        #expect(y.scalars(as: Float.self) == expected)
        let nd = try LayerRunner.run(
            ScatterNDLayer(reduction: .mul), Tensor(shape: [4], scalars: [Int64(1), 2, 3, 4]),
            Tensor(shape: [2, 1], scalars: [Int64(1), 1]), Tensor(shape: [2], scalars: [Int64(5), 7]))
        #expect(nd.scalars(as: Int64.self) == [1, 70, 3, 4])
    }

    @Test func oneHotNonZeroCompress() throws {
        let oh = try LayerRunner.run(
            OneHotLayer(axis: -1), Tensor(shape: [3], scalars: [Int64(0), -1, 5]),
            Tensor(scalar: Int64(3)), Tensor(shape: [2], scalars: [Float(-1), 1]))
        #expect(oh.scalars(as: Float.self) == [1, -1, -1, -1, -1, 1, -1, -1, -1])
        let nz = try LayerRunner.run(NonZeroLayer(), Tensor(shape: [2, 2], scalars: [true, false, true, true]))
        #expect(nz.shape == [2, 3])
        #expect(nz.scalars(as: Int64.self) == [0, 1, 1, 0, 0, 1])
        let cp = try LayerRunner.run(
            CompressLayer(axis: 0), Tensor(shape: [3, 2], scalars: [Float(1), 2, 3, 4, 5, 6]),
            Tensor(shape: [2], scalars: [false, true]))
        #expect(cp.scalars(as: Float.self) == [3, 4])
    }

    @Test func uniqueSortedOutputs() throws {
        let x = Tensor(shape: [6], scalars: [Float(2), 1, 1, 3, 4, 3])
        let out = try LayerRunner.run(UniqueLayer(sorted: true, axis: nil), inputs: [.tensor(x)], outputCount: 4)
            .map { try $0.asTensor() }
        #expect(out[0].scalars(as: Float.self) == [1, 2, 3, 4])
        #expect(out[1].scalars(as: Int64.self) == [1, 0, 3, 4])
        #expect(out[2].scalars(as: Int64.self) == [1, 0, 0, 2, 3, 2])
        #expect(out[3].scalars(as: Int64.self) == [2, 1, 2, 1])
    }

    @Test func reverseSequence() throws {
        let x = Tensor(shape: [3, 2], scalars: (0..<6).map { Float($0) })
        let y = try LayerRunner.run(ReverseSequenceLayer(batchAxis: 1, timeAxis: 0), x, Tensor.int64([3, 1]))
        #expect(y.scalars(as: Float.self) == [4, 1, 2, 3, 0, 5])
    }

    @Test func typeInference() throws {
        let data = LayerInput(type: .tensor(TensorType(.float32, [.symbol("B"), 10, 4])))
        let idx = LayerInput(type: .tensor(TensorType(.int64, [5])))
        let t = try GatherLayer(axis: 1).inferTypes([data, idx])
        #expect(t[0]?.tensorType?.shape == [.symbol("B"), 5, 4])
    }
}
