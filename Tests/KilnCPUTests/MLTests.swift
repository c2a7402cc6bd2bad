import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@Suite struct MLTests {
    @Test func labelEncoderMapsWithDefault() throws {
        let layer = LabelEncoderLayer(
            keys: Tensor(shape: [3], strings: ["a", "b", "c"]), values: Tensor(shape: [3], scalars: [Int16](arrayLiteral: 7, 8, 9)),
            defaultValue: Tensor(scalar: Int16(-5)))
        let y = try LayerRunner.run(layer, Tensor(shape: [2, 2], strings: ["c", "z", "a", "b"]))
        #expect(y.dtype == .int16 && y.shape == [2, 2])
        #expect(y.scalars(as: Int16.self) == [9, -5, 7, 8])
        let reverse = LabelEncoderLayer(
            keys: Tensor(shape: [2], scalars: [Int64](arrayLiteral: 4, 2)), values: Tensor(shape: [2], strings: ["four", "two"]),
            defaultValue: Tensor(shape: [], strings: ["?"]))
        #expect(try LayerRunner.run(reverse, Tensor(shape: [3], scalars: [Int64](arrayLiteral: 2, 3, 4))).strings == ["two", "?", "four"])
    }

    @Test func arrayFeatureExtractorPicksColumns() throws {
        var g = SeededGenerator(seed: 2)
        let x = Tensor.random([2, 3, 5], using: &g)
        let y = try LayerRunner.run(ArrayFeatureExtractorLayer(), x, Tensor.int64([4, 0, 4]))
        #expect(y.shape == [2, 3, 3])
        let xv = x.scalars(as: Float.self), yv = y.scalars(as: Float.self)
        for r in 0..<6 {
            #expect(yv[r * 3] == xv[r * 5 + 4] && yv[r * 3 + 1] == xv[r * 5] && yv[r * 3 + 2] == xv[r * 5 + 4])
        }
        #expect(throws: KilnError.self) { try LayerRunner.run(ArrayFeatureExtractorLayer(), x, Tensor.int64([5])) }
        let vector = try LayerRunner.run(ArrayFeatureExtractorLayer(), Tensor(shape: [3], scalars: [Int32](arrayLiteral: 1, 2, 3)), Tensor.int64([2]))
        #expect(vector.shape == [1, 1] && vector.scalars(as: Int32.self) == [3])
    }

    @Test func binarizerThresholds() throws {
        var g = SeededGenerator(seed: 8)
        let x = Tensor.random([20], in: -2...2, using: &g)
        let y = try LayerRunner.run(BinarizerLayer(threshold: 0.5), x)
        #expect(y.scalars(as: Float.self) == x.scalars(as: Float.self).map { $0 > 0.5 ? 1 : 0 })
    }

    @Test func treeEnsembleSumsLeavesPerTarget() throws {
        // Tree 0: x0 <= 1 ? leaf0 (target 0, 5) : (x1 in {2, 3} ? leaf1 (target 1, 7) : leaf2 (target 0, -1)).
        // Tree 1: a single leaf (leaf 3: target 1, 0.5).
        typealias Node = TreeEnsembleLayer.Node
        let nodes = [
            Node(feature: 0, comparison: .leq, split: 1, members: [], trueBranch: 0, trueIsLeaf: true, falseBranch: 1,
                 falseIsLeaf: false, missingTracksTrue: true),
            Node(feature: 1, comparison: .member, split: .nan, members: [2, 3], trueBranch: 1, trueIsLeaf: true,
                 falseBranch: 2, falseIsLeaf: true, missingTracksTrue: false),
        ]
        let layer = TreeEnsembleLayer(
            nodes: nodes, leafTargets: [0, 1, 0, 1], leafWeights: [5, 7, -1, 0.5], roots: [(0, false), (3, true)],
            targets: 2, aggregate: .sum, postTransform: .none)
        let x = Tensor(shape: [4, 2], scalars: [Double](arrayLiteral: 0, 9, 4, 3, 4, 4, .nan, 0))
        let y = try LayerRunner.run(layer, x)
        #expect(y.dtype == .float64 && y.shape == [4, 2])
        #expect(y.scalars(as: Double.self) == [5, 0.5, 0, 7.5, -1, 0.5, 5, 0.5])
        var logistic = layer
        logistic.postTransform = .logistic
        let z = try LayerRunner.run(logistic, x).scalars(as: Double.self)
        #expect(abs(z[0] - 1 / (1 + exp(-5.0))) < 1e-12)
    }
}
