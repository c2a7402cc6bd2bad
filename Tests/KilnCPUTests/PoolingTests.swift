import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCPU

/// A direct 2-D pooling reference over explicit pads: every tap tested against the bounds.
private func referencePool2D(
    _ x: [Float], h: Int, w: Int, kernel: Int, stride: Int, pad: Int, dilation: Int, oh: Int, ow: Int,
    average: Bool, includePad: Bool
) -> [Float] {
    var out: [Float] = []
    for oy in 0..<oh {
        for ox in 0..<ow {
            var taps: [Float] = []
            var padded = 0
            for ky in 0..<kernel {
                for kx in 0..<kernel {
                    let y = oy * stride - pad + ky * dilation
                    let xx = ox * stride - pad + kx * dilation
                    if y >= -pad && y < h + pad && xx >= -pad && xx < w + pad { padded += 1 }
                    if y >= 0 && y < h && xx >= 0 && xx < w { taps.append(x[y * w + xx]) }
                }
            }
            if average {
                out.append(taps.reduce(0, +) / Float(includePad ? padded : taps.count))
            } else {
                out.append(taps.max() ?? -.infinity)
            }
        }
    }
    return out
}

/// Rows of 6 take the per-output path; rows of 21 also the one across a run of whole windows (at stride 2,
/// windows of 1 to 4).
@Test(
    arguments: [
        (3, 2, 1, 1), (2, 2, 0, 1), (1, 2, 0, 1), (4, 2, 1, 1), (3, 1, 1, 2), (2, 1, 1, 1), (3, 1, 1, 1), (5, 3, 2, 1),
    ], [6, 21])
func pool2DMatchesReference(_ geometry: (Int, Int, Int, Int), w: Int) throws {
    let (kernel, stride, pad, dilation) = geometry
    var g = SeededGenerator(seed: UInt64(kernel * 100 + stride * 10 + pad + w * 1000))
    let h = 7
    let x = Tensor.random([1, 2, h, w], using: &g)
    let window = PoolGeometry(
        kernel: [kernel, kernel], strides: [stride, stride], dilations: [dilation, dilation],
        pads: [pad, pad, pad, pad])
    let eff = (kernel - 1) * dilation + 1
    let (oh, ow) = ((h + 2 * pad - eff) / stride + 1, (w + 2 * pad - eff) / stride + 1)
    let xv = x.scalars(as: Float.self)
    for (average, include) in [(false, false), (true, false), (true, true)] {
        let op: PoolLayer.Op = average ? .average(countIncludePad: include) : .max
        let y = try LayerRunner.run(PoolLayer(op: op, window: window), x)
        #expect(y.shape == [1, 2, oh, ow])
        var expected: [Float] = []
        for c in 0..<2 {
            expected += referencePool2D(
                Array(xv[(c * h * w)..<((c + 1) * h * w)]), h: h, w: w, kernel: kernel, stride: stride, pad: pad,
                dilation: dilation, oh: oh, ow: ow, average: average, includePad: include)
        }
        let got = y.scalars(as: Float.self)
        #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}

@Test func maxPoolIndicesBothOrders() throws {
    let x = Tensor(shape: [1, 1, 2, 3], scalars: [Float(1), 9, 2, 8, 3, 7])
    let window = PoolGeometry(kernel: [2, 2], strides: [1, 1])
    let rows = try LayerRunner.run(
        PoolLayer(op: .max, window: window, outputsIndices: true), inputs: [.tensor(x)], outputCount: 2)
    #expect(try rows[0].asTensor().scalars(as: Float.self) == [9, 9])
    #expect(try rows[1].asTensor().scalars(as: Int64.self) == [1, 1])
    let cols = try LayerRunner.run(
        PoolLayer(op: .max, window: PoolGeometry(kernel: [2, 1]), columnMajorIndices: true, outputsIndices: true),
        inputs: [.tensor(x)], outputCount: 2)
    #expect(try cols[1].asTensor().scalars(as: Int64.self) == [1, 2, 5])
}

@Test func globalAndLpPooling() throws {
    var g = SeededGenerator(seed: 9)
    let x = Tensor.random([2, 3, 4, 4], using: &g)
    let xv = x.scalars(as: Float.self)
    let avg = try LayerRunner.run(PoolLayer(op: .average(countIncludePad: false), window: nil), x)
    #expect(avg.shape == [2, 3, 1, 1])
    let expected = (0..<6).map { p in xv[(p * 16)..<(p * 16 + 16)].reduce(0, +) / 16 }
    #expect(zip(avg.scalars(as: Float.self), expected).allSatisfy { abs($0 - $1) < 1e-5 })
    let lp = try LayerRunner.run(PoolLayer(op: .lp(p: 2), window: nil), x)
    let norms = (0..<6).map { p in xv[(p * 16)..<(p * 16 + 16)].reduce(0) { $0 + $1 * $1 }.squareRoot() }
    #expect(zip(lp.scalars(as: Float.self), norms).allSatisfy { abs($0 - $1) < 1e-5 })
}

@Test func geometryResolution() throws {
    let same = PoolGeometry(kernel: [3], strides: [2], autoPad: .sameUpper)
    let resolved = try same.resolve([7])
    #expect(resolved.output == [4] && resolved.padBegin == [1] && resolved.paddedEnd == [9])
    let lower = PoolGeometry(kernel: [2], strides: [1], autoPad: .sameLower)
    #expect(try lower.resolve([4]).padBegin == [1])
    let ceil = PoolGeometry(kernel: [3], strides: [2], ceilMode: true)
    #expect(try ceil.resolve([6]).output == [3])
    let dropped = PoolGeometry(kernel: [2], strides: [2], pads: [0, 1], ceilMode: true)
    #expect(try dropped.resolve([4]).output == [2])
    #expect(throws: KilnError.self) { try PoolGeometry(kernel: [5]).resolve([3]) }
    let layer = PoolLayer(op: .max, window: PoolGeometry(kernel: [2, 2], strides: [2, 2]))
    let t = try layer.inferTypes([LayerInput(type: .tensor(TensorType(.float32, [.symbol("N"), 3, 8, 8])))])
    #expect(t[0] == .tensor(TensorType(.float32, [.symbol("N"), 3, 4, 4])))
}

@Test func maxUnpoolScattersAndChecksIndices() throws {
    let x = Tensor(shape: [1, 1, 1, 2], scalars: [Float(5), 6])
    let idx = Tensor(shape: [1, 1, 1, 2], scalars: [Int64(1), 2])
    let layer = MaxUnpoolLayer(window: PoolGeometry(kernel: [1, 2], strides: [1, 2]))
    let y = try LayerRunner.run(layer, x, idx)
    #expect(y.shape == [1, 1, 1, 4] && y.scalars(as: Float.self) == [0, 5, 6, 0])
    let bad = Tensor(shape: [1, 1, 1, 2], scalars: [Int64(1), 9])
    #expect(throws: KilnError.self) { try LayerRunner.run(layer, x, bad) }
}

@Test func poolingOtherElementTypes() throws {
    var g = SeededGenerator(seed: 12)
    let x = Tensor.random([1, 2, 4, 4], using: &g)
    let xv = x.scalars(as: Float.self)
    let window = PoolGeometry(kernel: [2, 2], strides: [2, 2])
    let reference = try LayerRunner.run(PoolLayer(op: .average(countIncludePad: false), window: window), x)
        .scalars(as: Float.self)
    let half = Tensor(shape: x.shape, scalars: xv.map { Float16($0) })
    let got = try LayerRunner.run(PoolLayer(op: .average(countIncludePad: false), window: window), half)
    #expect(got.dtype == .float16)
    #expect(zip(got.scalars(as: Float16.self), reference).allSatisfy { abs(Float($0) - $1) < 1e-2 })
    let bytes = Tensor(shape: [1, 1, 2, 2], scalars: [UInt8(3), 200, 7, 1])
    let maxed = try LayerRunner.run(PoolLayer(op: .max, window: PoolGeometry(kernel: [2, 2])), bytes)
    #expect(maxed.scalars(as: UInt8.self) == [200])
}

@Test func roiAlignAveragesBilinearSamples() throws {
    // A linear ramp: bilinear samples of a linear function average to its value at the bin centre.
    let x = Tensor(shape: [1, 1, 4, 4], scalars: (0..<16).map { Float($0 % 4) })
    let rois = Tensor(shape: [1, 4], scalars: [Float(0), 0, 2, 2])
    let batch = Tensor(shape: [1], scalars: [Int64(0)])
    let layer = RoiPoolLayer(
        method: .align(max: false, samplingRatio: 2, halfPixel: false), outputHeight: 1, outputWidth: 2,
        spatialScale: 1)
    let y = try LayerRunner.run(layer, x, rois, batch)
    #expect(y.shape == [1, 1, 1, 2])
    #expect(zip(y.scalars(as: Float.self), [Float(0.5), 1.5]).allSatisfy { abs($0 - $1) < 1e-5 })
    let bad = Tensor(shape: [1, 4], scalars: [Float.nan, 0, .infinity, 2])
    #expect(try LayerRunner.run(layer, x, bad, batch).shape == [1, 1, 1, 2])
}
