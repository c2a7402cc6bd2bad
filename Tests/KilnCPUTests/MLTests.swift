import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@Suite struct MLTests {
    @Test func labelEncoderMapsWithDefault() throws {
        let layer = LabelEncoderLayer(
            keys: Tensor(shape: [3], strings: ["a", "b", "c"]),
            values: Tensor(shape: [3], scalars: [Int16](arrayLiteral: 7, 8, 9)),
            defaultValue: Tensor(scalar: Int16(-5)))
        let y = try LayerRunner.run(layer, Tensor(shape: [2, 2], strings: ["c", "z", "a", "b"]))
        #expect(y.dtype == .int16 && y.shape == [2, 2])
        #expect(y.scalars(as: Int16.self) == [9, -5, 7, 8])
        let reverse = LabelEncoderLayer(
            keys: Tensor(shape: [2], scalars: [Int64](arrayLiteral: 4, 2)),
            values: Tensor(shape: [2], strings: ["four", "two"]),
            defaultValue: Tensor(shape: [], strings: ["?"]))
        #expect(
            try LayerRunner.run(reverse, Tensor(shape: [3], scalars: [Int64](arrayLiteral: 2, 3, 4))).strings == [
                "two", "?", "four",
            ])
    }

    @Test func arrayFeatureExtractorPicksColumns() throws {
        var g = SeededGenerator(seed: 2)
        let x = Tensor.random([2, 3, 5], using: &g)
        let y = try LayerRunner.run(ArrayFeatureExtractorLayer(), x, Tensor.int64([4, 0, 4]))
        #expect(y.shape == [2, 3, 3])
        let xv = x.scalars(as: Float.self)
        let yv = y.scalars(as: Float.self)
        for r in 0..<6 {
            #expect(yv[r * 3] == xv[r * 5 + 4] && yv[r * 3 + 1] == xv[r * 5] && yv[r * 3 + 2] == xv[r * 5 + 4])
        }
        #expect(throws: KilnError.self) { try LayerRunner.run(ArrayFeatureExtractorLayer(), x, Tensor.int64([5])) }
        let vector = try LayerRunner.run(
            ArrayFeatureExtractorLayer(), Tensor(shape: [3], scalars: [Int32](arrayLiteral: 1, 2, 3)), Tensor.int64([2])
        )
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
            Node(
                feature: 0, comparison: .leq, split: 1, members: [], trueBranch: 0, trueIsLeaf: true, falseBranch: 1,
                falseIsLeaf: false, missingTracksTrue: true),
            Node(
                feature: 1, comparison: .member, split: .nan, members: [2, 3], trueBranch: 1, trueIsLeaf: true,
                falseBranch: 2, falseIsLeaf: true, missingTracksTrue: false),
        ]
        let layer = TreeEnsembleLayer(
            nodes: nodes, leaves: [(0, 5), (1, 7), (0, -1), (1, 0.5)].map { [.init(target: $0, weight: $1)] },
            roots: [.init(index: 0, isLeaf: false), .init(index: 3, isLeaf: true)],
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

@Suite struct MLLinearTests {
    @Test func scalerNormalizerImputer() throws {
        let x = Tensor(shape: [2, 3], scalars: [Double](arrayLiteral: 1, 2, 3, 4, -5, .nan))
        let scaled = try LayerRunner.run(MLScalerLayer(offset: [1, 0, 1], scale: [2]), x).scalars(as: Float.self)
        #expect(Array(scaled.prefix(5)) == [0, 4, 4, 6, -10])
        let imputed = try LayerRunner.run(MLImputerLayer(values: [7, 8, 9], replaced: .nan), x).scalars(as: Double.self)
        #expect(imputed == [1, 2, 3, 4, -5, 9])
        let finite = Tensor(shape: [2, 2], scalars: [Float](arrayLiteral: 3, 4, -1, 1))
        #expect(
            try LayerRunner.run(MLNormalizerLayer(norm: .l2), finite).scalars(as: Float.self) == [
                0.6, 0.8, Float(-1 / 2.0.squareRoot()), Float(1 / 2.0.squareRoot()),
            ])
        #expect(
            try LayerRunner.run(MLNormalizerLayer(norm: .l1), finite).scalars(as: Float.self) == [
                3.0 / 7, 4.0 / 7, -0.5, 0.5,
            ])
    }

    @Test func linearClassifierBinaryAndMulticlass() throws {
        let x = Tensor(shape: [2, 2], scalars: [Float](arrayLiteral: 1, 2, -3, 0.5))
        let binary = LinearModelLayer(
            coefficients: [1, -1], intercepts: [0.5], classes: 2, postTransform: .none,
            classLabels: .strings(["no", "yes"]))
        let b = try LayerRunner.run(binary, inputs: [.tensor(x)], outputCount: 2)
        #expect(try b[0].asTensor().strings == ["no", "no"])
        #expect(try b[1].asTensor().scalars(as: Float.self) == [0.5, -0.5, 3, -3])
        let multi = LinearModelLayer(
            coefficients: [1, 0, 0, 1, -1, -1], intercepts: [], classes: 3, postTransform: .softmax,
            classLabels: .int64s([10, 20, 30]))
        let m = try LayerRunner.run(multi, inputs: [.tensor(x)], outputCount: 2)
        #expect(try m[0].asTensor().scalars(as: Int64.self) == [20, 30])
        let s = try m[1].asTensor().scalars(as: Float.self)
        #expect(abs(s[0] + s[1] + s[2] - 1) < 1e-6)
        let regressor = LinearModelLayer(
            coefficients: [2, 3], intercepts: [1], classes: 1, postTransform: .none, classLabels: nil)
        #expect(try LayerRunner.run(regressor, x).scalars(as: Float.self) == [9, -3.5])
    }

    @Test func oneHotEncoder() throws {
        let layer = MLOneHotEncoderLayer(categories: Tensor(shape: [3], strings: ["a", "b", "c"]), zeros: true)
        let y = try LayerRunner.run(layer, Tensor(shape: [1, 2], strings: ["c", "z"]))
        #expect(y.shape == [1, 2, 3])
        #expect(y.scalars(as: Float.self) == [0, 0, 1, 0, 0, 0])
        var strict = layer
        strict.zeros = false
        #expect(throws: KilnError.self) { try LayerRunner.run(strict, Tensor(shape: [1], strings: ["z"])) }
    }

    @Test func binaryTreeClassifierDerivesTheOtherClass() throws {
        // One tree: x0 <= 0 ? leaf 0 (class 1 weight -2) : leaf 1 (class 1 weight 2); logistic scores.
        let node = TreeEnsembleLayer.Node(
            feature: 0, comparison: .leq, split: 0, members: [], trueBranch: 0, trueIsLeaf: true, falseBranch: 1,
            falseIsLeaf: true, missingTracksTrue: false)
        let layer = TreeEnsembleLayer(
            nodes: [node], leaves: [[.init(target: 1, weight: -2)], [.init(target: 1, weight: 2)]],
            roots: [.init(index: 0, isLeaf: false)],
            targets: 2, aggregate: .sum, postTransform: .logistic, classLabels: .int64s([0, 1]), outputType: .float32)
        let out = try LayerRunner.run(
            layer, inputs: [.tensor(Tensor(shape: [2, 1], scalars: [Float](arrayLiteral: -1, 1)))], outputCount: 2)
        #expect(try out[0].asTensor().scalars(as: Int64.self) == [0, 1])
        let s = try out[1].asTensor().scalars(as: Float.self)
        #expect(abs(s[1] - Float(1 / (1 + exp(2.0)))) < 1e-6 && abs(s[0] - Float(1 / (1 + exp(-2.0)))) < 1e-6)
    }
}

@Suite struct MLVectorTests {
    @Test func featureVectorizerPadsAndTruncates() throws {
        let a = Tensor(shape: [2, 3], scalars: [Float](arrayLiteral: 1, 2, 3, 4, 5, 6))
        let b = Tensor(shape: [2], scalars: [Int64](arrayLiteral: 7, 8))
        let y = try LayerRunner.run(MLFeatureVectorizerLayer(inputDimensions: [2, 2]), a, b)
        #expect(y.shape == [2, 4])
        #expect(y.scalars(as: Float.self) == [1, 2, 7, 0, 4, 5, 8, 0])
    }

    @Test func svmRegressorKernels() throws {
        var g = SeededGenerator(seed: 12)
        let x = Tensor.random([3, 2], using: &g)
        let sv: [Float] = [0.5, -0.5, 1, 1]
        let layer = SVMRegressorLayer(
            kernel: .rbf, gamma: 0.7, coef0: 0, degree: 0, supportVectors: sv, supports: 2, coefficients: [2, -1],
            rho: 0.25, oneClass: false)
        let y = try LayerRunner.run(layer, x).scalars(as: Float.self)
        let xv = x.scalars(as: Float.self).map(Double.init)
        for r in 0..<3 {
            var expected = 0.25
            for (j, c) in [2.0, -1].enumerated() {
                let d0 = xv[r * 2] - Double(sv[j * 2])
                let d1 = xv[r * 2 + 1] - Double(sv[j * 2 + 1])
                expected += c * exp(-0.7 * (d0 * d0 + d1 * d1))
            }
            #expect(abs(Double(y[r]) - expected) < 1e-5)
        }
        let linear = SVMRegressorLayer(
            kernel: .linear, gamma: 0, coef0: 0, degree: 0, supportVectors: [], supports: 0, coefficients: [1, 2],
            rho: -1,
            oneClass: true)
        let signs = try LayerRunner.run(linear, Tensor(shape: [2, 2], scalars: [Float](arrayLiteral: 1, 1, 0, 0)))
        #expect(signs.scalars(as: Float.self) == [1, -1])
    }
}
