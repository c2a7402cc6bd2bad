import KilnIR
import KilnTestSupport
import Testing

/// Straightforward N-D convolution with explicit pads, the reference for the im2col + SGEMM path.
private func naiveConvolution(
    _ x: [Double], xShape: [Int], _ w: [Double], wShape: [Int], bias: [Double]?, strides: [Int], dilations: [Int],
    padsBegin: [Int], outSpatial: [Int], group: Int
) -> [Double] {
    let (batch, channels, outChannels) = (xShape[0], xShape[1], wShape[0])
    let inSpatial = Array(xShape.dropFirst(2))
    let kernel = Array(wShape.dropFirst(2))
    let (cg, mg) = (channels / group, outChannels / group)
    let outCount = outSpatial.reduce(1, *)
    let kernelCount = kernel.reduce(1, *)
    let inCount = inSpatial.reduce(1, *)
    func unflatten(_ i: Int, _ shape: [Int]) -> [Int] {
        var rest = i
        var r = [Int](repeating: 0, count: shape.count)
        for a in stride(from: shape.count - 1, through: 0, by: -1) {
            r[a] = rest % shape[a]
            rest /= shape[a]
        }
        return r
    }
    var out = [Double](repeating: 0, count: batch * outChannels * outCount)
    for n in 0..<batch {
        for m in 0..<outChannels {
            let g = m / mg
            for o in 0..<outCount {
                let op = unflatten(o, outSpatial)
                var acc = bias?[m] ?? 0
                for c in 0..<cg {
                    for k in 0..<kernelCount {
                        let kp = unflatten(k, kernel)
                        var flat = 0
                        var inside = true
                        for a in 0..<op.count {
                            let i = op[a] * strides[a] - padsBegin[a] + kp[a] * dilations[a]
                            if i < 0 || i >= inSpatial[a] { inside = false }
                            flat = flat * inSpatial[a] + i
                        }
                        if inside {
                            acc += x[(n * channels + g * cg + c) * inCount + flat] * w[(m * cg + c) * kernelCount + k]
                        }
                    }
                }
                out[(n * outChannels + m) * outCount + o] = acc
            }
        }
    }
    return out
}

struct ConvCase: CustomStringConvertible, Sendable {
    var x: [Int]
    var w: [Int]
    var strides: [Int]
    var dilations: [Int]
    var pads: [Int]
    var group: Int = 1
    var bias = true
    var description: String { "x\(x) w\(w) s\(strides) d\(dilations) p\(pads) g\(group)" }
}

@Suite struct ConvolutionTests {
    static let cases: [ConvCase] = [
        ConvCase(x: [1, 3, 9, 7], w: [5, 3, 3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1]),
        ConvCase(x: [2, 4, 11, 10], w: [6, 4, 3, 2], strides: [2, 3], dilations: [2, 1], pads: [0, 1, 2, 0]),
        ConvCase(
            x: [1, 6, 8, 8], w: [4, 3, 3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1], group: 2),
        ConvCase(
            x: [1, 5, 7, 6], w: [5, 1, 3, 3], strides: [2, 2], dilations: [1, 1], pads: [1, 1, 1, 1], group: 5),
        // Whole groups (and images) a thread where there are enough to go round: ShuffleNet's grouped 1x1, and
        // two images of three groups (six products on two threads).
        ConvCase(
            x: [1, 16, 6, 7], w: [12, 4, 1, 1], strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], group: 4),
        ConvCase(
            x: [2, 9, 7, 5], w: [6, 3, 3, 3], strides: [1, 2], dilations: [1, 1], pads: [1, 1, 1, 1], group: 3),
        // Depthwise (group = channels): the direct loops, 3x3 over a padded plane and any other window row by row.
        ConvCase(
            x: [2, 6, 9, 11], w: [6, 1, 3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1], group: 6),
        ConvCase(
            x: [1, 4, 10, 9], w: [4, 1, 3, 3], strides: [2, 2], dilations: [1, 1], pads: [0, 0, 1, 1], group: 4),
        ConvCase(
            x: [1, 3, 12, 12], w: [3, 1, 3, 3], strides: [2, 1], dilations: [2, 2], pads: [2, 2, 2, 2], group: 3),
        ConvCase(
            x: [1, 3, 9, 13], w: [3, 1, 3, 3], strides: [1, 3], dilations: [1, 1], pads: [1, 1, 1, 1], group: 3),
        ConvCase(
            x: [2, 5, 11, 8], w: [5, 1, 5, 5], strides: [1, 1], dilations: [1, 1], pads: [2, 2, 2, 2], group: 5,
            bias: false),
        ConvCase(x: [2, 4, 17], w: [4, 1, 3], strides: [1], dilations: [1], pads: [1, 1], group: 4),
        ConvCase(x: [2, 16, 5, 9], w: [13, 16, 1, 1], strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0]),
        ConvCase(
            x: [1, 8, 9, 9], w: [7, 8, 1, 1], strides: [2, 2], dilations: [1, 1], pads: [0, 0, 0, 0], bias: false),
        ConvCase(x: [1, 64, 14, 14], w: [70, 64, 3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1]),
        ConvCase(x: [2, 3, 20], w: [4, 3, 5], strides: [2], dilations: [1], pads: [2, 1]),
        ConvCase(
            x: [1, 2, 5, 6, 4], w: [3, 2, 2, 3, 2], strides: [1, 2, 1], dilations: [1, 1, 2], pads: [1, 0, 1, 0, 1, 1]),
    ]

    @Test(arguments: cases)
    func floatConvolutionMatchesNaive(_ c: ConvCase) throws {
        var rng = SeededGenerator(seed: UInt64(c.x.reduce(7, *) &+ c.w.reduce(3, *)))
        let x = Tensor.random(c.x, using: &rng)
        let w = Tensor.random(c.w, using: &rng)
        let b = Tensor.random([c.w[0]], using: &rng)
        let params = ConvolutionParameters(strides: c.strides, dilations: c.dilations, pads: c.pads, group: c.group)
        let layer = ConvolutionLayer(params)
        let y = c.bias ? try LayerRunner.run(layer, x, w, b) : try LayerRunner.run(layer, x, w)
        let r = try params.resolve(input: Array(c.x.dropFirst(2)), kernel: Array(c.w.dropFirst(2)))
        #expect(y.shape == [c.x[0], c.w[0]] + r.output)
        let rank = c.x.count - 2
        let expected = naiveConvolution(
            try x.doubleValues(), xShape: c.x, try w.doubleValues(), wShape: c.w,
            bias: c.bias ? try b.doubleValues() : nil, strides: c.strides, dilations: c.dilations,
            padsBegin: Array(c.pads.prefix(rank)), outSpatial: r.output, group: c.group)
        let actual = try y.doubleValues()
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4, "worst error \(worst)")

        // double runs the direct reference loop; it must agree with the float fast path.
        let x64 = Tensor(shape: c.x, scalars: try x.doubleValues())
        let w64 = Tensor(shape: c.w, scalars: try w.doubleValues())
        let b64 = Tensor(shape: [c.w[0]], scalars: try b.doubleValues())
        let y64 = c.bias ? try LayerRunner.run(layer, x64, w64, b64) : try LayerRunner.run(layer, x64, w64)
        let worst64 = zip(try y64.doubleValues(), expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst64 < 1e-9)
    }

    /// A depthwise layer's epilogue: bias, residual, then ReLU6, per channel plane.
    @Test func depthwiseEpilogueMatchesSeparateSteps() throws {
        var rng = SeededGenerator(seed: 77)
        let x = Tensor.random([2, 4, 7, 7], using: &rng)
        let w = Tensor.random([4, 1, 3, 3], in: -3...3, using: &rng)
        let b = Tensor.random([4], using: &rng)
        let residual = Tensor.random([2, 4, 7, 7], in: -4...4, using: &rng)
        let params = ConvolutionParameters(pads: [1, 1, 1, 1], group: 4)
        var fused = ConvolutionLayer(params)
        fused.epilogue = Epilogue(residual: true, activation: .clip(min: 0, max: 6))
        let y = try LayerRunner.run(fused, x, w, b, residual).doubleValues()
        let plain = try LayerRunner.run(ConvolutionLayer(params), x, w, b).doubleValues()
        let r = try residual.doubleValues()
        let expected = plain.indices.map { min(6, max(0, plain[$0] + r[$0])) }
        let worst = zip(y, expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-5, "worst error \(worst)")
    }

    @Test(arguments: [ConvolutionAutoPad.sameUpper, .sameLower, .valid])
    func autoPadShapes(_ mode: ConvolutionAutoPad) throws {
        let params = ConvolutionParameters(strides: [2, 2], autoPad: mode)
        let r = try params.resolve(input: [7, 8], kernel: [3, 3])
        if mode == .valid {
            #expect(r.output == [3, 3])
        } else {
            #expect(r.output == [4, 4])
            // total padding 2 on rows (odd pixel none) and 1 on columns: the extra pixel goes to the end for
            // sameUpper and to the start for sameLower.
            #expect(r.padsBegin == (mode == .sameUpper ? [1, 0] : [1, 1]))
            #expect(r.padsEnd == (mode == .sameUpper ? [1, 1] : [1, 0]))
        }
    }

    @Test func typeInferenceKeepsSymbolicBatch() throws {
        let layer = ConvolutionLayer(ConvolutionParameters(strides: [2, 2], pads: [3, 3, 3, 3]))
        let x = LayerInput(type: .tensor(TensorType(.float32, [.symbol("N"), 3, 224, 224])))
        let w = LayerInput(type: .tensor(TensorType(.float32, dims: [64, 3, 7, 7])))
        let types = try layer.inferTypes([x, w])
        #expect(types[0] == .tensor(TensorType(.float32, [.symbol("N"), 64, 112, 112])))
    }

    @Test func deconvolutionMatchesScatterDefinition() throws {
        var rng = SeededGenerator(seed: 99)
        let x = Tensor.random([1, 4, 3, 5], using: &rng)
        let w = Tensor.random([4, 3, 3, 2], using: &rng)
        let layer = DeconvolutionLayer(ConvolutionParameters(strides: [2, 1], pads: [1, 0, 0, 1], group: 2))
        let y = try LayerRunner.run(layer, x, w)
        // out = s*(in-1) + k - pads: rows 2*2+3-1 = 6, columns 1*4+2-1 = 5; 3 channels per group * 2.
        #expect(y.shape == [1, 6, 6, 5])
        let xv = try x.doubleValues()
        let wv = try w.doubleValues()
        var expected = [Double](repeating: 0, count: 6 * 6 * 5)
        for ci in 0..<4 {
            for iy in 0..<3 {
                for ix in 0..<5 {
                    for co in 0..<3 {
                        for ky in 0..<3 {
                            for kx in 0..<2 {
                                let oy = iy * 2 - 1 + ky
                                let ox = ix + kx
                                guard oy >= 0, oy < 6, ox < 5 else { continue }
                                let m = (ci / 2) * 3 + co
                                expected[(m * 6 + oy) * 5 + ox] +=
                                    xv[(ci * 3 + iy) * 5 + ix] * wv[((ci * 3 + co) * 3 + ky) * 2 + kx]
                            }
                        }
                    }
                }
            }
        }
        let worst = zip(try y.doubleValues(), expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-5)
        // double takes the direct scatter loop.
        let y64 = try LayerRunner.run(layer, Tensor(shape: x.shape, scalars: xv), Tensor(shape: w.shape, scalars: wv))
        #expect((zip(try y64.doubleValues(), expected).map { abs($0 - $1) }.max() ?? 1) < 1e-9)
    }

    @Test func convIntegerSubtractsZeroPoints() throws {
        let x = Tensor(shape: [1, 1, 3, 3], scalars: [UInt8](arrayLiteral: 2, 3, 4, 5, 6, 7, 8, 9, 10))
        let w = Tensor(shape: [1, 1, 2, 2], scalars: [UInt8](arrayLiteral: 1, 1, 1, 1))
        let y = try LayerRunner.run(
            ConvolutionIntegerLayer(ConvolutionParameters()),
            inputs: [.tensor(x), .tensor(w), .tensor(Tensor(scalar: UInt8(1))), nil])[0].asTensor()
        #expect(y.dtype == .int32)
        #expect(y.scalars(as: Int32.self) == [12, 16, 24, 28])
    }

    @Test func causalConvolutionCarriesState() throws {
        // One channel, kernel [1, 2, 3]: y[t] = 1*seq[t] + 2*seq[t+1] + 3*seq[t+2] + bias, seq = past ++ x.
        let x = Tensor(shape: [1, 1, 3], scalars: [Float](arrayLiteral: 1, 2, 3))
        let w = Tensor(shape: [1, 1, 3], scalars: [Float](arrayLiteral: 1, 2, 3))
        let b = Tensor(shape: [1], scalars: [Float](arrayLiteral: 0.5))
        let past = Tensor(shape: [1, 1, 2], scalars: [Float](arrayLiteral: -1, 4))
        let out = try LayerRunner.run(
            CausalConvolutionLayer(), inputs: [.tensor(x), .tensor(w), .tensor(b), .tensor(past)], outputCount: 2)
        // seq = [-1, 4, 1, 2, 3]
        let expected: [Float] = [10.5, 12.5, 14.5]
        #expect(try out[0].asTensor().scalars(as: Float.self) == expected)
        let state: [Float] = [2, 3]
        #expect(try out[1].asTensor().scalars(as: Float.self) == state)
    }
}
