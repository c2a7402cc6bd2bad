import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@Suite struct MiscTests {
    @Test func nonMaxSuppressionKeepsBestNonOverlapping() throws {
        // Corner boxes (y1, x1, y2, x2); box 1 overlaps box 0 heavily, box 2 is far away.
        let boxes = Tensor(shape: [1, 3, 4], scalars: [Float](arrayLiteral: 0, 0, 1, 1, 0, 0.1, 1, 1.1, 5, 5, 6, 6))
        let scores = Tensor(shape: [1, 2, 3], scalars: [Float](arrayLiteral: 0.9, 0.95, 0.3, 0.1, 0.2, 0.8))
        let y = try LayerRunner.run(
            NonMaxSuppressionLayer(centerPointBox: false),
            inputs: [
                .tensor(boxes), .tensor(scores), .tensor(Tensor(shape: [1], scalars: [Int64(2)])),
                .tensor(Tensor(shape: [1], scalars: [Float(0.5)])), .tensor(Tensor(shape: [1], scalars: [Float(0.15)])),
            ])[0].asTensor()
        #expect(y.shape == [4, 3])
        #expect(y.scalars(as: Int64.self) == [0, 0, 1, 0, 0, 2, 0, 1, 2, 0, 1, 1])
        // The same boxes as centers and sizes give the same answer.
        let centered = Tensor(
            shape: [1, 3, 4], scalars: [Float](arrayLiteral: 0.5, 0.5, 1, 1, 0.6, 0.5, 1, 1, 5.5, 5.5, 1, 1))
        let z = try LayerRunner.run(
            NonMaxSuppressionLayer(centerPointBox: true),
            inputs: [
                .tensor(centered), .tensor(scores), .tensor(Tensor(shape: [1], scalars: [Int64(2)])),
                .tensor(Tensor(shape: [1], scalars: [Float(0.5)])), .tensor(Tensor(shape: [1], scalars: [Float(0.15)])),
            ])[0].asTensor()
        #expect(z.scalars(as: Int64.self) == y.scalars(as: Int64.self))
    }

    @Test(arguments: [DType.float32, .float64, .float16])
    func swishMatchesFormula(dtype: DType) throws {
        var g = SeededGenerator(seed: 21)
        let base = Tensor.random([64], in: -4...4, using: &g)
        let x = try MiscSupportForTests.cast(base, to: dtype)
        let y = try LayerRunner.run(SwishLayer(alpha: 1.5), x)
        #expect(y.dtype == dtype)
        let xv = try x.doubleValues()
        let yv = try y.doubleValues()
        for i in xv.indices {
            #expect(abs(yv[i] - xv[i] / (1 + exp(-1.5 * xv[i]))) < (dtype == .float16 ? 1e-2 : 1e-5))
        }
    }

    @Test func softmaxCrossEntropyMatchesManualComputation() throws {
        var g = SeededGenerator(seed: 4)
        let scores = Tensor.random([3, 4, 2], in: -2...2, using: &g)
        let labels = Tensor(shape: [3, 2], scalars: [Int64](arrayLiteral: 0, 3, -1, 2, 1, 1))
        let weights = Tensor(shape: [4], scalars: [Float](arrayLiteral: 1, 0.5, 2, 1.5))
        let out = try LayerRunner.run(
            ClassificationLossLayer(softmax: true, reduction: .mean, ignoreIndex: -1),
            inputs: [.tensor(scores), .tensor(labels), .tensor(weights)], outputCount: 2)
        let s = try scores.doubleValues()
        let l = try labels.int64Values()
        let w = try weights.doubleValues()
        var total = 0.0
        var weightSum = 0.0
        var logProb = [Double](repeating: 0, count: 24)
        for n in 0..<3 {
            for d in 0..<2 {
                let z = (0..<4).map { s[(n * 4 + $0) * 2 + d] }
                let lse = log(z.map(exp).reduce(0, +))
                for c in 0..<4 { logProb[(n * 4 + c) * 2 + d] = z[c] - lse }
                let label = l[n * 2 + d]
                if label == -1 { continue }
                total -= (z[Int(label)] - lse) * w[Int(label)]
                weightSum += w[Int(label)]
            }
        }
        #expect(abs(try out[0].asTensor().scalarDouble() - total / weightSum) < 1e-5)
        #expect(
            try out[1].asTensor().doubleValues().enumerated().allSatisfy { abs($0.element - logProb[$0.offset]) < 1e-5 }
        )
        // Without softmax the scores are taken as log-probabilities; 'none' keeps the label shape.
        let nll = try LayerRunner.run(
            ClassificationLossLayer(softmax: false, reduction: .none, ignoreIndex: -1),
            inputs: [.tensor(scores), .tensor(labels)])[0].asTensor()
        #expect(nll.shape == [3, 2])
        #expect(abs(try nll.doubleValues()[1] + s[(0 * 4 + 3) * 2 + 1]) < 1e-6)
        let bad = Tensor(shape: [3, 2], scalars: [Int64](arrayLiteral: 0, 9, 0, 0, 0, 0))
        #expect(throws: KilnError.self) {
            try LayerRunner.run(ClassificationLossLayer(softmax: true, reduction: .sum, ignoreIndex: nil), scores, bad)
        }
    }

    @Test func optimizersFollowTheirUpdateRules() throws {
        let r = Tensor(scalar: Float(0.1))
        let t = Tensor(scalar: Int64(2))
        let x = Tensor(shape: [2], scalars: [Float](arrayLiteral: 1, -2))
        let grad = Tensor(shape: [2], scalars: [Float](arrayLiteral: 0.5, 3))
        let h = Tensor(shape: [2], scalars: [Float](arrayLiteral: 1, 2))
        let adagrad = OptimizerStepLayer(algorithm: .adagrad(decayFactor: 0.1, epsilon: 1e-6, normCoefficient: 0.01))
        let out = try LayerRunner.run(adagrad, inputs: [r, t, x, grad, h].map { .tensor($0) }, outputCount: 2)
        let xs = try out[0].asTensor().doubleValues()
        let hs = try out[1].asTensor().doubleValues()
        for (i, (xi, gi, hi)) in zip([1.0, -2], zip([0.5, 3.0], [1.0, 2])).map({ ($0, $1.0, $1.1) }).enumerated() {
            let gr = 0.01 * xi + gi
            let hNew = hi + gr * gr
            #expect(abs(hs[i] - hNew) < 1e-5)
            #expect(abs(xs[i] - (xi - 0.1 / 1.2 * gr / (hNew.squareRoot() + 1e-6))) < 1e-5)
        }
        let momentum = OptimizerStepLayer(
            algorithm: .momentum(alpha: 0.9, beta: 0.5, normCoefficient: 0, nesterov: true))
        let m = try LayerRunner.run(momentum, inputs: [r, t, x, grad, h].map { .tensor($0) }, outputCount: 2)
        let v0 = 0.9 * 1 + 0.5 * 0.5
        #expect(abs(try m[1].asTensor().doubleValues()[0] - v0) < 1e-6)
        #expect(abs(try m[0].asTensor().doubleValues()[0] - (1 - 0.1 * (0.5 + 0.9 * v0))) < 1e-6)
        let adam = OptimizerStepLayer(
            algorithm: .adam(alpha: 0.9, beta: 0.999, epsilon: 1e-6, normCoefficient: 0, normCoefficientPost: 0))
        let a = try LayerRunner.run(adam, inputs: [r, t, x, grad, h, h].map { .tensor($0) }, outputCount: 3)
        let v = 0.9 * 1 + 0.1 * 0.5
        let hh = 0.999 * 1 + 0.001 * 0.25
        let rate = 0.1 * (1 - pow(0.999, 2)).squareRoot() / (1 - pow(0.9, 2))
        #expect(abs(try a[0].asTensor().doubleValues()[0] - (1 - rate * v / (hh.squareRoot() + 1e-6))) < 1e-5)
    }

    @Test func seededGeneratorsAreReproducibleAndInRange() throws {
        let uniform = RandomLayer(distribution: .uniform(low: 2, high: 3), dtype: .float64, shape: [100], seed: 7)
        let a = try LayerRunner.run(uniform, inputs: [])[0].asTensor()
        let b = try LayerRunner.run(uniform, inputs: [])[0].asTensor()
        #expect(a.shape == [100] && a.dtype == .float64)
        #expect(a.scalars(as: Double.self) == b.scalars(as: Double.self))
        #expect(a.scalars(as: Double.self).allSatisfy { $0 >= 2 && $0 < 3 })
        #expect(!uniform.isDeterministic)
        let normal = RandomLayer(distribution: .normal(mean: 5, scale: 0.1), dtype: nil, shape: nil, seed: 1)
        let n = try LayerRunner.run(normal, Tensor(shape: [2000], scalars: [Float](repeating: 0, count: 2000)))
        let mean = try n.doubleValues().reduce(0, +) / 2000
        #expect(abs(mean - 5) < 0.02)
        let p = Tensor(shape: [4], scalars: [Float](arrayLiteral: 0, 1, 0, 1))
        let bern = try LayerRunner.run(RandomLayer(distribution: .bernoulli, dtype: .int32, shape: nil, seed: nil), p)
        #expect(bern.scalars(as: Int32.self) == [0, 1, 0, 1])
        let logits = Tensor(shape: [2, 3], scalars: [Float](arrayLiteral: 0, -100, -100, -100, -100, 0))
        let draws = try LayerRunner.run(
            RandomLayer(distribution: .multinomial(samples: 5), dtype: .int64, shape: nil, seed: 3), logits)
        #expect(draws.shape == [2, 5])
        #expect(draws.scalars(as: Int64.self) == [0, 0, 0, 0, 0, 2, 2, 2, 2, 2])
    }

    @Test func typeInference() throws {
        let loss = ClassificationLossLayer(softmax: true, reduction: .none, ignoreIndex: nil)
        let t = try loss.inferTypes([
            LayerInput(type: .tensor(TensorType(.float32, [.symbol("n"), 5, 7]))),
            LayerInput(type: .tensor(TensorType(.int64, [.symbol("n"), 7]))),
        ])
        #expect(t[0] == .tensor(TensorType(.float32, [.symbol("n"), 7])))
        let random = RandomLayer(distribution: .multinomial(samples: 4), dtype: nil, shape: nil, seed: nil)
        let r = try random.inferTypes([LayerInput(type: .tensor(TensorType(.float32, dims: [3, 10])))])
        #expect(r[0] == .tensor(TensorType(.int32, dims: [3, 4])))
        let nms = NonMaxSuppressionLayer(centerPointBox: false)
        #expect(try nms.inferTypes([])[0] == .tensor(TensorType(.int64, [.unknown, 3])))
    }
}

/// Test-side dtype conversion, independent of the kernels' helpers.
enum MiscSupportForTests {
    static func cast(_ t: Tensor, to dtype: DType) throws -> Tensor {
        let v = try t.doubleValues()
        switch dtype {
        case .float32: return Tensor(shape: t.shape, scalars: v.map { Float($0) })
        case .float64: return Tensor(shape: t.shape, scalars: v)
        case .float16: return Tensor(shape: t.shape, scalars: v.map { Float16($0) })
        default: throw KilnError.unsupported("test cast to \(dtype)")
        }
    }
}
