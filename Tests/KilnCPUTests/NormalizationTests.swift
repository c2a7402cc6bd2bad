import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCPU

private func closeEnough(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-4) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
}

/// Normalizes `values` by their own mean and population variance.
private func standardize(_ values: [Float], epsilon: Float) -> [Float] {
    let mean = values.reduce(0, +) / Float(values.count)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)
    return values.map { ($0 - mean) / (variance + epsilon).squareRoot() }
}

@Test func batchNormalizationInference() throws {
    var g = SeededGenerator(seed: 1)
    let x = Tensor.random([2, 3, 4, 5], using: &g)
    let scale = Tensor.random([3], using: &g)
    let bias = Tensor.random([3], using: &g)
    let mean = Tensor.random([3], using: &g)
    let variance = Tensor.random([3], in: 0.5...2, using: &g)
    let y = try LayerRunner.run(
        NormalizationLayer(method: .batch(training: false, momentum: 0.9)), x, scale, bias, mean, variance)
    let (xv, s, b, m, v) = (
        x.scalars(as: Float.self), scale.scalars(as: Float.self), bias.scalars(as: Float.self),
        mean.scalars(as: Float.self), variance.scalars(as: Float.self)
    )
    let expected = xv.indices.map { i -> Float in
        let c = (i / 20) % 3
        return (xv[i] - m[c]) / (v[c] + 1e-5).squareRoot() * s[c] + b[c]
    }
    #expect(closeEnough(y.scalars(as: Float.self), expected))
}

@Test func instanceAndGroupNormalization() throws {
    var g = SeededGenerator(seed: 2)
    let x = Tensor.random([2, 4, 3], using: &g)
    let scale = Tensor.random([4], using: &g)
    let bias = Tensor.random([4], using: &g)
    let xv = x.scalars(as: Float.self)
    let (s, b) = (scale.scalars(as: Float.self), bias.scalars(as: Float.self))
    let inst = try LayerRunner.run(NormalizationLayer(method: .instance), x, scale, bias).scalars(as: Float.self)
    var expected: [Float] = []
    for plane in 0..<8 {
        let c = plane % 4
        expected += standardize(Array(xv[(plane * 3)..<(plane * 3 + 3)]), epsilon: 1e-5).map { $0 * s[c] + b[c] }
    }
    #expect(closeEnough(inst, expected))
    let group = try LayerRunner.run(
        NormalizationLayer(method: .group(groups: 2, perGroupAffine: false)), x, scale, bias
    ).scalars(as: Float.self)
    expected = []
    for row in 0..<4 {
        let normalized = standardize(Array(xv[(row * 6)..<(row * 6 + 6)]), epsilon: 1e-5)
        for (i, v) in normalized.enumerated() {
            let c = (row % 2) * 2 + i / 3
            expected.append(v * s[c] + b[c])
        }
    }
    #expect(closeEnough(group, expected))
}

@Test(arguments: [1, -1])
func layerNormalizationWithStatistics(axis: Int) throws {
    var g = SeededGenerator(seed: 3)
    let x = Tensor.random([2, 3, 4], using: &g)
    let tail = axis == 1 ? [3, 4] : [4]
    let scale = Tensor.random(tail, using: &g)
    let bias = Tensor.random(tail, using: &g)
    let out = try LayerRunner.run(
        NormalizationLayer(method: .layer(axis: axis)), inputs: [.tensor(x), .tensor(scale), .tensor(bias)],
        outputCount: 3)
    let inner = tail.reduce(1, *)
    let xv = x.scalars(as: Float.self)
    let (s, b) = (scale.scalars(as: Float.self), bias.scalars(as: Float.self))
    var expected: [Float] = []
    for row in 0..<(24 / inner) {
        expected += standardize(Array(xv[(row * inner)..<((row + 1) * inner)]), epsilon: 1e-5).enumerated().map {
            $0.element * s[$0.offset] + b[$0.offset]
        }
    }
    #expect(closeEnough(try out[0].asTensor().scalars(as: Float.self), expected))
    #expect(try out[1].asTensor().shape == (axis == 1 ? [2, 1, 1] : [2, 3, 1]))
}

@Test func rmsLpAndMeanVariance() throws {
    var g = SeededGenerator(seed: 4)
    let x = Tensor.random([2, 3], in: 0.5...2, using: &g)
    let scale = Tensor.random([3], using: &g)
    let xv = x.scalars(as: Float.self)
    let s = scale.scalars(as: Float.self)
    let rms = try LayerRunner.run(NormalizationLayer(method: .rms(axis: -1)), x, scale).scalars(as: Float.self)
    var expected: [Float] = []
    for row in 0..<2 {
        let r = Array(xv[(row * 3)..<(row * 3 + 3)])
        let ms = r.reduce(0) { $0 + $1 * $1 } / 3
        expected += r.enumerated().map { $0.element / (ms + 1e-5).squareRoot() * s[$0.offset] }
    }
    #expect(closeEnough(rms, expected))
    let l1 = try LayerRunner.run(NormalizationLayer(method: .lp(axis: 0, p: 1)), x).scalars(as: Float.self)
    #expect(closeEnough(l1, xv.indices.map { xv[$0] / (abs(xv[$0 % 3]) + abs(xv[$0 % 3 + 3])) }))
    let mvn = try LayerRunner.run(NormalizationLayer(method: .meanVariance(axes: [0, 1]), epsilon: 1e-9), x)
    #expect(closeEnough(mvn.scalars(as: Float.self), standardize(xv, epsilon: 0), 1e-3))
}

@Test func localResponseNormalization() throws {
    var g = SeededGenerator(seed: 5)
    let x = Tensor.random([1, 5, 2, 2], using: &g)
    let (size, alpha, beta, bias): (Int, Float, Float, Float) = (3, 1e-2, 0.75, 2)
    let y = try LayerRunner.run(
        NormalizationLayer(method: .lrn(size: size, alpha: alpha, beta: beta, bias: bias)), x
    ).scalars(as: Float.self)
    let xv = x.scalars(as: Float.self)
    let expected = xv.indices.map { i -> Float in
        let c = i / 4
        var sum: Float = 0
        for o in max(0, c - 1)...min(4, c + 1) { sum += xv[o * 4 + i % 4] * xv[o * 4 + i % 4] }
        return xv[i] / pow(bias + alpha / Float(size) * sum, beta)
    }
    #expect(closeEnough(y, expected))
}

@Test func normalizationTypeInference() throws {
    let layer = NormalizationLayer(method: .layer(axis: -2))
    let types = try layer.inferTypes([LayerInput(type: .tensor(TensorType(.float32, [.symbol("B"), 3, 4])))])
    #expect(types[1] == .tensor(TensorType(.float32, [.symbol("B"), 1, 1])))
    #expect(throws: KilnError.self) {
        try NormalizationLayer(method: .instance).inferTypes([
            LayerInput(type: .tensor(TensorType(.int32, dims: [1, 2])))
        ])
    }
}
