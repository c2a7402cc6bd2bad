import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// A direct O(n²) DFT in Double, independent of the kernel's FFT.
private func referenceDFT(_ re: [Double], _ im: [Double], inverse: Bool) -> ([Double], [Double]) {
    let n = re.count
    var outRe = [Double](repeating: 0, count: n)
    var outIm = [Double](repeating: 0, count: n)
    let sign: Double = inverse ? 1 : -1
    for k in 0..<n {
        for t in 0..<n {
            let angle = sign * 2 * Double.pi * Double(k * t) / Double(n)
            outRe[k] += re[t] * cos(angle) - im[t] * sin(angle)
            outIm[k] += re[t] * sin(angle) + im[t] * cos(angle)
        }
        if inverse {
            outRe[k] /= Double(n)
            outIm[k] /= Double(n)
        }
    }
    return (outRe, outIm)
}

private func floats(_ t: Tensor) -> [Double] { t.scalars(as: Float.self).map(Double.init) }

@Suite struct SignalTests {
    @Test(arguments: [8, 10, 16, 7, 12, 9, 400, 1, 2])
    func dftMatchesDirectSum(length: Int) throws {
        var g = SeededGenerator(seed: UInt64(length))
        // [batch 2, length, 2]: complex signals along axis 1.
        let x = Tensor.random([2, length, 2], using: &g)
        let y = try LayerRunner.run(DFTLayer(axis: 1, inverse: false, onesided: false), x)
        #expect(y.shape == [2, length, 2])
        let xv = floats(x)
        let yv = floats(y)
        for b in 0..<2 {
            let re = (0..<length).map { xv[(b * length + $0) * 2] }
            let im = (0..<length).map { xv[(b * length + $0) * 2 + 1] }
            let (er, ei) = referenceDFT(re, im, inverse: false)
            for k in 0..<length {
                #expect(abs(yv[(b * length + k) * 2] - er[k]) < 1e-3)
                #expect(abs(yv[(b * length + k) * 2 + 1] - ei[k]) < 1e-3)
            }
        }
    }

    @Test func dftOnAnInnerAxisWithRealInput() throws {
        var g = SeededGenerator(seed: 3)
        let x = Tensor.random([3, 6, 1], using: &g)
        // Axis -2 (opset 20 spelling) is axis 1 here; onesided keeps 6/2+1 bins.
        let y = try LayerRunner.run(DFTLayer(axis: -2, inverse: false, onesided: true), x)
        #expect(y.shape == [3, 4, 2])
        let xv = floats(x)
        let yv = floats(y)
        for b in 0..<3 {
            let (er, ei) = referenceDFT(
                (0..<6).map { xv[b * 6 + $0] }, [Double](repeating: 0, count: 6), inverse: false)
            for k in 0..<4 {
                #expect(abs(yv[(b * 4 + k) * 2] - er[k]) < 1e-4)
                #expect(abs(yv[(b * 4 + k) * 2 + 1] - ei[k]) < 1e-4)
            }
        }
    }

    @Test(arguments: [8, 9])
    func inverseOnesidedUndoesRealForward(length: Int) throws {
        var g = SeededGenerator(seed: 11)
        let x = Tensor.random([1, length, 1], using: &g)
        let spectrum = try LayerRunner.run(DFTLayer(axis: 1, inverse: false, onesided: true), x)
        let back = try LayerRunner.run(
            DFTLayer(axis: 1, inverse: true, onesided: true),
            inputs: [.tensor(spectrum), .tensor(Tensor(scalar: Int64(length)))])[0].asTensor()
        #expect(back.shape == [1, length, 1])
        #expect(Comparison.mismatch(back, x, rtol: 1e-4, atol: 1e-5) == nil)
    }

    @Test func dftAxisFromInputAndLengthPadding() throws {
        var g = SeededGenerator(seed: 5)
        let x = Tensor.random([2, 3, 1], using: &g)
        let y = try LayerRunner.run(
            DFTLayer(axis: nil, inverse: false, onesided: false),
            inputs: [.tensor(x), .tensor(Tensor(scalar: Int64(5))), .tensor(Tensor(scalar: Int64(1)))])[0].asTensor()
        #expect(y.shape == [2, 5, 2])
        let xv = floats(x)
        let yv = floats(y)
        let (er, _) = referenceDFT([xv[0], xv[1], xv[2], 0, 0], [Double](repeating: 0, count: 5), inverse: false)
        for k in 0..<5 { #expect(abs(yv[k * 2] - er[k]) < 1e-4) }
    }

    @Test func stftFramesAreWindowedDFTs() throws {
        var g = SeededGenerator(seed: 9)
        let signal = Tensor.random([1, 20, 1], using: &g)
        let window = Tensor.random([8], in: 0.1...1, using: &g)
        let y = try LayerRunner.run(
            STFTLayer(onesided: true), inputs: [.tensor(signal), .tensor(Tensor(scalar: Int64(4))), .tensor(window)]
        )[0].asTensor()
        #expect(y.shape == [1, 4, 5, 2])
        let s = floats(signal)
        let w = floats(window)
        let yv = floats(y)
        for f in 0..<4 {
            let frame = (0..<8).map { s[f * 4 + $0] * w[$0] }
            let (er, ei) = referenceDFT(frame, [Double](repeating: 0, count: 8), inverse: false)
            for k in 0..<5 {
                #expect(abs(yv[(f * 5 + k) * 2] - er[k]) < 1e-4)
                #expect(abs(yv[(f * 5 + k) * 2 + 1] - ei[k]) < 1e-4)
            }
        }
    }

    @Test func windowsFollowTheirFormulas() throws {
        let size = Tensor(scalar: Int32(10))
        let hann = floats(try LayerRunner.run(WindowLayer(function: .hann, periodic: true, dtype: .float32), size))
        let hamming = floats(
            try LayerRunner.run(WindowLayer(function: .hamming, periodic: false, dtype: .float32), size))
        let blackman = try LayerRunner.run(WindowLayer(function: .blackman, periodic: true, dtype: .float64), size)
        #expect(blackman.dtype == .float64)
        let b = blackman.scalars(as: Double.self)
        for n in 0..<10 {
            let p = 2 * Double.pi * Double(n)
            #expect(abs(hann[n] - pow(sin(Double.pi * Double(n) / 10), 2)) < 1e-6)
            #expect(abs(hamming[n] - (25.0 / 46 - 21.0 / 46 * cos(p / 9))) < 1e-6)
            #expect(abs(b[n] - (0.42 - 0.5 * cos(p / 10) + 0.08 * cos(2 * p / 10))) < 1e-12)
        }
        // A symmetric window is symmetric.
        #expect(abs(hamming[1] - hamming[8]) < 1e-6)
    }

    @Test func melWeightMatrixMatchesKnownValues() throws {
        let y = try LayerRunner.run(
            MelWeightMatrixLayer(dtype: .float32),
            Tensor(scalar: Int32(8)), Tensor(scalar: Int32(16)), Tensor(scalar: Int32(8192)), Tensor(scalar: Float(0)),
            Tensor(scalar: Float(4096)))
        #expect(y.shape == [9, 8])
        let v = floats(y)
        let ones = [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)]
        for r in 0..<9 {
            for c in 0..<8 { #expect(v[r * 8 + c] == (ones.contains { $0 == (r, c) } ? 1 : 0)) }
        }
    }

    @Test func typeInference() throws {
        let dft = DFTLayer(axis: 1, inverse: false, onesided: true)
        let t = try dft.inferTypes([LayerInput(type: .tensor(TensorType(.float32, [.symbol("n"), 10, 1])))])
        #expect(t[0] == .tensor(TensorType(.float32, [.symbol("n"), 6, 2])))
        let irfft = DFTLayer(axis: 1, inverse: true, onesided: true)
        let u = try irfft.inferTypes([LayerInput(type: .tensor(TensorType(.float32, dims: [1, 6, 2])))])
        #expect(u[0] == .tensor(TensorType(.float32, dims: [1, 10, 1])))
        let window = WindowLayer(function: .hann, periodic: true, dtype: .float16)
        let w = try window.inferTypes([
            LayerInput(type: .tensor(TensorType(.int64, dims: [])), constant: Tensor(scalar: Int64(7)))
        ])
        #expect(w[0] == .tensor(TensorType(.float16, dims: [7])))
        let stft = STFTLayer(onesided: true)
        let s = try stft.inferTypes([
            LayerInput(type: .tensor(TensorType(.float32, dims: [1, 128, 1]))),
            LayerInput(type: .tensor(TensorType(.int64, dims: [])), constant: Tensor(scalar: Int64(8))),
            .absent,
            LayerInput(type: .tensor(TensorType(.int64, dims: [])), constant: Tensor(scalar: Int64(16))),
        ])
        #expect(s[0] == .tensor(TensorType(.float32, dims: [1, 15, 9, 2])))
    }

    @Test func badAxisIsAnErrorNotACrash() throws {
        let x = Tensor(shape: [2, 3, 1], scalars: [Float](repeating: 1, count: 6))
        #expect(throws: KilnError.self) { try LayerRunner.run(DFTLayer(axis: 2, inverse: false, onesided: false), x) }
        #expect(throws: KilnError.self) { try LayerRunner.run(DFTLayer(axis: 7, inverse: false, onesided: false), x) }
    }
}
