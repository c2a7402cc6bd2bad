import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCPU

/// Reference reductions by walking every element's multi-index; independent of the kernel's plan.
private func referenceReduce(_ x: [Float], shape: [Int], axes: Set<Int>, _ f: ([Float]) -> Float) -> [Float] {
    let strides = Broadcast.strides(shape)
    var groups: [Int: [Float]] = [:]
    var order: [Int] = []
    for i in 0..<x.count {
        var key = 0
        var mult = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) where !axes.contains(d) {
            key += ((i / strides[d]) % shape[d]) * mult
            mult *= shape[d]
        }
        if groups[key] == nil { order.append(key) }
        groups[key, default: []].append(x[i])
    }
    return order.sorted().map { f(groups[$0] ?? []) }
}

private func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-4) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
}

@Test(arguments: [
    (ReduceLayer.Op.sum, [1]), (.mean, [0, 2]), (.max, [2]), (.min, [0]), (.l1, [1, 2]), (.l2, [0, 1]),
    (.logSumExp, [1]), (.sumSquare, [0, 2]), (.prod, [2]), (.logSum, [0, 1, 2]),
])
func reduceMatchesReference(op: ReduceLayer.Op, axes: [Int]) throws {
    var g = SeededGenerator(seed: 11)
    let shape = [3, 4, 5]
    let x = Tensor.random(shape, in: 0.1...2, using: &g)
    let values = x.scalars(as: Float.self)
    let f: ([Float]) -> Float
    switch op {
    case .sum: f = { $0.reduce(0, +) }
    case .mean: f = { $0.reduce(0, +) / Float($0.count) }
    case .max: f = { $0.max() ?? 0 }
    case .min: f = { $0.min() ?? 0 }
    case .l1: f = { $0.reduce(0) { $0 + abs($1) } }
    case .l2: f = { $0.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    case .sumSquare: f = { $0.reduce(0) { $0 + $1 * $1 } }
    case .prod: f = { $0.reduce(1, *) }
    case .logSum: f = { log($0.reduce(0, +)) }
    case .logSumExp: f = { log($0.reduce(0) { $0 + exp($1) }) }
    }
    let expected = referenceReduce(values, shape: shape, axes: Set(axes), f)
    let layer = ReduceLayer(op: op, axes: axes, keepDims: false)
    let y = try LayerRunner.run(layer, x)
    #expect(y.shape == shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    #expect(close(y.scalars(as: Float.self), expected))
    let kept = try LayerRunner.run(ReduceLayer(op: op, axes: axes, keepDims: true), x)
    #expect(kept.shape == shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element })
}

@Test func reduceAxesInputAndNoop() throws {
    var g = SeededGenerator(seed: 3)
    let x = Tensor.random([2, 3], using: &g)
    let layer = ReduceLayer(op: .sum, axes: nil, keepDims: true, noopWithEmptyAxes: true)
    let same = try LayerRunner.run(layer, inputs: [.tensor(x), .tensor(Tensor.int64([Int64]()))])[0].asTensor()
    #expect(same.scalars(as: Float.self) == x.scalars(as: Float.self))
    let all = try LayerRunner.run(ReduceLayer(op: .sum, axes: nil, keepDims: false), x)
    #expect(all.shape == [])
    #expect(close(all.scalars(as: Float.self), [x.scalars(as: Float.self).reduce(0, +)]))
    let byInput = try LayerRunner.run(layer, inputs: [.tensor(x), .tensor(Tensor.int64([-1]))])[0].asTensor()
    #expect(byInput.shape == [2, 1])
}

@Test func reduceEmptySetAndIntegers() throws {
    let empty = Tensor(zeros: .float32, shape: [2, 0, 4])
    let sum = try LayerRunner.run(ReduceLayer(op: .sum, axes: [1], keepDims: true), empty)
    #expect(sum.shape == [2, 1, 4] && sum.scalars(as: Float.self).allSatisfy { $0 == 0 })
    let maxed = try LayerRunner.run(ReduceLayer(op: .max, axes: [1], keepDims: false), empty)
    #expect(maxed.scalars(as: Float.self).allSatisfy { $0 == -.infinity })
    let ints = Tensor(shape: [2, 3], scalars: [Int32(1), -2, 3, 4, 5, -6])
    let s = try LayerRunner.run(ReduceLayer(op: .sum, axes: [1], keepDims: false), ints)
    #expect(s.scalars(as: Int32.self) == [2, 3])
    let bools = Tensor(shape: [2, 2], scalars: [true, false, false, false])
    #expect(
        try LayerRunner.run(ReduceLayer(op: .max, axes: [1], keepDims: false), bools).scalars(as: Bool.self) == [
            true, false,
        ])
}

@Test func reduceTypeInference() throws {
    let layer = ReduceLayer(op: .mean, axes: [-1], keepDims: false)
    let t = try layer.inferTypes([LayerInput(type: .tensor(TensorType(.float32, [.symbol("N"), 3, 5])))])
    #expect(t[0] == .tensor(TensorType(.float32, [.symbol("N"), 3])))
    #expect(throws: KilnError.self) {
        try ReduceLayer(op: .sum, axes: [4]).inferTypes([LayerInput(type: .tensor(TensorType(.float32, dims: [2])))])
    }
}

@Test func argReduceTiesAndLastIndex() throws {
    let x = Tensor(shape: [2, 3], scalars: [Float(1), 3, 3, 2, 2, 0])
    let first = try LayerRunner.run(ArgReduceLayer(op: .max, axis: 1, keepDims: false), x)
    #expect(first.scalars(as: Int64.self) == [1, 0])
    let last = try LayerRunner.run(ArgReduceLayer(op: .max, axis: 1, keepDims: true, selectLastIndex: true), x)
    #expect(last.shape == [2, 1] && last.scalars(as: Int64.self) == [2, 1])
    let minimum = try LayerRunner.run(ArgReduceLayer(op: .min, axis: 0, keepDims: false), x)
    #expect(minimum.scalars(as: Int64.self) == [0, 1, 1])
}

@Test(arguments: [0, 1, 2])
func softmaxMatchesReference(axis: Int) throws {
    var g = SeededGenerator(seed: UInt64(20 + axis))
    let shape = [2, 3, 4]
    let x = Tensor.random(shape, in: -3...3, using: &g)
    let v = x.scalars(as: Float.self)
    let strides = Broadcast.strides(shape)
    let y = try LayerRunner.run(SoftmaxLayer(variant: .softmax, axis: axis), x).scalars(as: Float.self)
    let ly = try LayerRunner.run(SoftmaxLayer(variant: .logSoftmax, axis: axis), x).scalars(as: Float.self)
    for i in 0..<v.count {
        let pos = (i / strides[axis]) % shape[axis]
        let line = (0..<shape[axis]).map { v[i + ($0 - pos) * strides[axis]] }
        let denom = line.reduce(0) { $0 + exp($1) }
        #expect(abs(y[i] - exp(v[i]) / denom) < 1e-5)
        #expect(abs(ly[i] - (v[i] - log(denom))) < 1e-4)
    }
    let hard = try LayerRunner.run(SoftmaxLayer(variant: .hardmax, axis: axis), x).scalars(as: Float.self)
    #expect(hard.reduce(0, +) == Float(v.count / shape[axis]))
}

@Test func softmaxFlattenTail() throws {
    var g = SeededGenerator(seed: 5)
    let x = Tensor.random([2, 3, 4], using: &g)
    let y = try LayerRunner.run(SoftmaxLayer(variant: .softmax, axis: 1, flattenTail: true), x).scalars(as: Float.self)
    #expect(abs(y[0..<12].reduce(0, +) - 1) < 1e-5 && abs(y[12..<24].reduce(0, +) - 1) < 1e-5)
}

@Test func cumulativeSumModes() throws {
    let x = Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, 4, 5, 6])
    func run(_ axis: Int, _ exclusive: Bool, _ reverse: Bool) throws -> [Float] {
        try LayerRunner.run(CumulativeLayer(axis: axis, exclusive: exclusive, reverse: reverse), x).scalars(
            as: Float.self)
    }
    #expect(try run(1, false, false) == [1, 3, 6, 4, 9, 15])
    #expect(try run(1, true, false) == [0, 1, 3, 0, 4, 9])
    #expect(try run(1, false, true) == [6, 5, 3, 15, 11, 6])
    #expect(try run(0, true, true) == [4, 5, 6, 0, 0, 0])
    let ints = Tensor(shape: [3], scalars: [Int32(1), 2, 3])
    let axis = Tensor(scalar: Int32(0))
    let r = try LayerRunner.run(CumulativeLayer(axis: nil), inputs: [.tensor(ints), .tensor(axis)])[0].asTensor()
    #expect(r.scalars(as: Int32.self) == [1, 3, 6])
    let product = try LayerRunner.run(CumulativeLayer(op: .prod, axis: 1, exclusive: true), x)
    #expect(product.scalars(as: Float.self) == [1, 1, 2, 1, 4, 20])
    let intProduct = try LayerRunner.run(CumulativeLayer(op: .prod, axis: 0, reverse: true), ints)
    #expect(intProduct.scalars(as: Int32.self) == [6, 6, 3])
}

@Test func topKOrdersTiesByIndex() throws {
    let x = Tensor(shape: [2, 4], scalars: [Float(1), 3, 3, 2, 0, 0, 5, 0])
    let out = try LayerRunner.run(TopKLayer(k: 2, axis: 1), inputs: [.tensor(x)], outputCount: 2)
    #expect(try out[0].asTensor().scalars(as: Float.self) == [3, 3, 5, 0])
    #expect(try out[1].asTensor().scalars(as: Int64.self) == [1, 2, 2, 0])
    let small = try LayerRunner.run(
        TopKLayer(k: nil, axis: -1, largest: false), inputs: [.tensor(x), .tensor(Tensor.int64([3]))], outputCount: 2)
    #expect(try small[1].asTensor().scalars(as: Int64.self) == [0, 3, 1, 0, 1, 3])
    #expect(throws: KilnError.self) { try LayerRunner.run(TopKLayer(k: 5, axis: 1), x) }
}

@Test func reductionOtherElementTypes() throws {
    var g = SeededGenerator(seed: 13)
    let x = Tensor.random([3, 8], in: -2...2, using: &g)
    let xv = x.scalars(as: Float.self)
    let reference = try LayerRunner.run(SoftmaxLayer(variant: .softmax, axis: 1), x).scalars(as: Float.self)
    let half = Tensor(shape: x.shape, scalars: xv.map { Float16($0) })
    let got = try LayerRunner.run(SoftmaxLayer(variant: .softmax, axis: 1), half).scalars(as: Float16.self)
    #expect(zip(got, reference).allSatisfy { abs(Float($0) - $1) < 2e-3 })
    let brain = Tensor(shape: x.shape, scalars: xv.map { BFloat16($0) })
    let sum = try LayerRunner.run(ReduceLayer(op: .sum, axes: [1], keepDims: false), brain)
    let expected = (0..<3).map { r in xv[(r * 8)..<(r * 8 + 8)].reduce(0, +) }
    #expect(zip(sum.scalars(as: BFloat16.self), expected).allSatisfy { abs($0.floatValue - $1) < 0.05 })
    let wide = Tensor(shape: [2, 2], scalars: [UInt64.max, 1, 5, 7])
    let top = try LayerRunner.run(TopKLayer(k: 1, axis: 1), inputs: [.tensor(wide)], outputCount: 2)
    #expect(try top[0].asTensor().scalars(as: UInt64.self) == [UInt64.max, 7])
}
