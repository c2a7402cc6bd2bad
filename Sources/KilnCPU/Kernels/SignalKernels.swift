import Foundation
import KilnIR
import KilnRuntime

/// Kernels for DFT, STFT, window functions and the mel weight matrix. All compute in Double.
enum SignalKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(DFTLayer.self) { layer, inputs, context in [.tensor(try dft(layer, inputs, threads: context.threads))]
        },
        cpuKernel(STFTLayer.self) { layer, inputs, context in
            [.tensor(try stft(layer, inputs, threads: context.threads))]
        },
        cpuKernel(WindowLayer.self) { layer, inputs, _ in [.tensor(try window(layer, try inputs.tensor(0)))] },
        cpuKernel(MelWeightMatrixLayer.self) { layer, inputs, _ in [.tensor(try melWeightMatrix(layer, inputs))] },
    ]

    static func dft(_ layer: DFTLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let x = try inputs.tensor(0)
        let rank = x.rank
        guard rank >= 2 else { throw KilnError.shapeMismatch("DFT signal needs rank >= 2, has shape \(x.shape)") }
        let channels = x.shape[rank - 1]
        guard channels == 1 || channels == 2 else {
            throw KilnError.shapeMismatch("DFT signal's last dimension must be 1 or 2, shape is \(x.shape)")
        }
        var axis = layer.axis ?? -2
        if layer.axis == nil, let t = try inputs.optionalTensor(2) { axis = try MiscSupport.scalarInt(t, "DFT axis") }
        axis = try MiscSupport.axis(axis, rank: rank, "DFT axis")
        guard axis < rank - 1 else {
            throw KilnError.invalidArgument("DFT axis cannot be the last (complex) dimension")
        }
        let n = x.shape[axis]
        let halfInverse = layer.inverse && layer.onesided
        var length = halfInverse ? 2 * (n - 1) : n
        if let t = try inputs.optionalTensor(1) { length = try MiscSupport.scalarInt(t, "dft_length") }
        guard length >= 1 else { throw KilnError.invalidArgument("DFT length must be positive, is \(length)") }
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = x.shape[(axis + 1)..<(rank - 1)].reduce(1, *)
        let outAxis = !layer.inverse && layer.onesided ? length / 2 + 1 : length
        let outChannels = halfInverse ? 1 : 2
        var outShape = x.shape
        outShape[axis] = outAxis
        outShape[rank - 1] = outChannels
        let values = try MiscSupport.doubles(x)
        var out = [Double](
            repeating: 0, count: try MiscSupport.checkedCount([outer, outAxis, inner, outChannels], "DFT output"))
        let plan = FourierPlan(length: length, inverse: layer.inverse)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let dst = UncheckedSendable(dst)
                Parallel.forEach(outer * inner, threads: threads, minimumChunk: max(1, 4096 / max(length, 1))) {
                    lines in
                    let work = UnsafeMutablePointer<Double>.allocate(capacity: 4 * length)
                    defer { work.deallocate() }
                    let re = work
                    let im = work + length
                    let sr = work + 2 * length
                    let si = work + 3 * length
                    for line in lines {
                        let o = line / inner
                        let i = line % inner
                        re.initialize(repeating: 0, count: 2 * length)
                        let base = o * n * inner + i
                        if halfInverse {
                            let bins = min(n, length / 2 + 1)
                            for k in 0..<bins {
                                let p = (base + k * inner) * channels
                                re[k] = src[p]
                                im[k] = channels == 2 ? src[p + 1] : 0
                            }
                            // A real signal's spectrum is Hermitian: X[n-k] = conj(X[k]); DC and Nyquist are real.
                            im[0] = 0
                            if length % 2 == 0 && length / 2 < bins { im[length / 2] = 0 }
                            for k in 1..<max(bins, 1) where length - k > k {
                                re[length - k] = re[k]
                                im[length - k] = -im[k]
                            }
                        } else {
                            for t in 0..<min(n, length) {
                                let p = (base + t * inner) * channels
                                re[t] = src[p]
                                im[t] = channels == 2 ? src[p + 1] : 0
                            }
                        }
                        plan.transform(re, im, scratchRe: sr, scratchIm: si)
                        let outBase = o * outAxis * inner + i
                        for k in 0..<outAxis {
                            let q = (outBase + k * inner) * outChannels
                            dst.value[q] = re[k]
                            if outChannels == 2 { dst.value[q + 1] = im[k] }
                        }
                    }
                }
            }
        }
        return try MiscSupport.tensor(x.dtype, shape: outShape, out)
    }

    static func stft(_ layer: STFTLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let x = try inputs.tensor(0)
        guard x.rank == 3, x.shape[2] == 1 || x.shape[2] == 2 else {
            throw KilnError.shapeMismatch("STFT signal must be [batch, length, 1|2], is \(x.shape)")
        }
        let (batch, total, channels) = (x.shape[0], x.shape[1], x.shape[2])
        let step = try MiscSupport.scalarInt(try inputs.tensor(1), "STFT frame_step")
        guard step > 0 else { throw KilnError.invalidArgument("STFT frame_step must be positive, is \(step)") }
        let window = try inputs.optionalTensor(2).map(MiscSupport.doubles)
        var frameLength = window?.count ?? total
        if let t = try inputs.optionalTensor(3) { frameLength = try MiscSupport.scalarInt(t, "STFT frame_length") }
        if let window, window.count != frameLength {
            throw KilnError.shapeMismatch("STFT window has \(window.count) values, frame_length is \(frameLength)")
        }
        guard frameLength >= 1, frameLength <= total else {
            throw KilnError.invalidArgument("STFT frame_length \(frameLength) does not fit a signal of \(total)")
        }
        let frames = 1 + (total - frameLength) / step
        let bins = layer.onesided ? frameLength / 2 + 1 : frameLength
        let values = try MiscSupport.doubles(x)
        var out = [Double](repeating: 0, count: try MiscSupport.checkedCount([batch, frames, bins, 2], "STFT output"))
        let plan = FourierPlan(length: frameLength, inverse: false)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let dst = UncheckedSendable(dst)
                Parallel.forEach(batch * frames, threads: threads) { range in
                    let work = UnsafeMutablePointer<Double>.allocate(capacity: 4 * frameLength)
                    defer { work.deallocate() }
                    let re = work
                    let im = work + frameLength
                    let sr = work + 2 * frameLength
                    let si = work + 3 * frameLength
                    for job in range {
                        let b = job / frames
                        let f = job % frames
                        for t in 0..<frameLength {
                            let p = (b * total + f * step + t) * channels
                            let w = window?[t] ?? 1
                            re[t] = src[p] * w
                            im[t] = channels == 2 ? src[p + 1] * w : 0
                        }
                        plan.transform(re, im, scratchRe: sr, scratchIm: si)
                        for k in 0..<bins {
                            let q = (job * bins + k) * 2
                            dst.value[q] = re[k]
                            dst.value[q + 1] = im[k]
                        }
                    }
                }
            }
        }
        return try MiscSupport.tensor(x.dtype, shape: [batch, frames, bins, 2], out)
    }

    static func window(_ layer: WindowLayer, _ sizeTensor: Tensor) throws -> Tensor {
        let size = try MiscSupport.scalarInt(sizeTensor, "window size")
        guard size >= 0 else { throw KilnError.invalidArgument("window size must not be negative, is \(size)") }
        let period = Double(layer.periodic ? size : size - 1)
        var values = [Double](repeating: 1, count: try MiscSupport.checkedCount([size], "window"))
        if period > 0 {
            for n in 0..<size {
                let phase = 2 * Double.pi * Double(n) / period
                switch layer.function {
                case .hann: values[n] = 0.5 - 0.5 * cos(phase)
                case .hamming: values[n] = 25.0 / 46.0 - 21.0 / 46.0 * cos(phase)
                case .blackman: values[n] = 0.42 - 0.5 * cos(phase) + 0.08 * cos(2 * phase)
                }
            }
        }
        return try MiscSupport.tensor(layer.dtype, shape: [size], values)
    }

    static func melWeightMatrix(_ layer: MelWeightMatrixLayer, _ inputs: [Value?]) throws -> Tensor {
        let melBins = try MiscSupport.scalarInt(try inputs.tensor(0), "num_mel_bins")
        let dftLength = try MiscSupport.scalarInt(try inputs.tensor(1), "dft_length")
        let sampleRate = try MiscSupport.scalar(try inputs.tensor(2), "sample_rate")
        let lower = try MiscSupport.scalar(try inputs.tensor(3), "lower_edge_hertz")
        let upper = try MiscSupport.scalar(try inputs.tensor(4), "upper_edge_hertz")
        guard melBins > 0, dftLength > 0, sampleRate > 0, lower >= 0, upper > lower else {
            throw KilnError.invalidArgument(
                "MelWeightMatrix needs positive bins, length and rate and 0 <= lower < upper edge")
        }
        let spectrumBins = dftLength / 2 + 1
        let lowMel = 2595 * log10(1 + lower / 700)
        let highMel = 2595 * log10(1 + upper / 700)
        // The reference spaces num_mel_bins + 2 points by (high - low) / (num_mel_bins + 2).
        let melStep = (highMel - lowMel) / Double(melBins + 2)
        let edges = (0..<(melBins + 2)).map { i -> Int in
            let hz = 700 * (pow(10, (Double(i) * melStep + lowMel) / 2595) - 1)
            return Int((Double(dftLength + 1) * hz / sampleRate).rounded(.down))
        }
        var out = [Double](repeating: 0, count: try MiscSupport.checkedCount([spectrumBins, melBins], "mel matrix"))
        func set(_ row: Int, _ col: Int, _ v: Double) throws {
            guard row >= 0, row < spectrumBins else {
                throw KilnError.invalidArgument("mel edge \(row) falls outside the \(spectrumBins) spectrum bins")
            }
            out[row * melBins + col] = v
        }
        for i in 0..<melBins {
            let (left, center, right) = (edges[i], edges[i + 1], edges[i + 2])
            guard left <= center, center <= right else { throw KilnError.invalidArgument("mel edges are not ordered") }
            if center == left {
                try set(center, i, 1)
            } else {
                for j in left...center { try set(j, i, Double(j - left) / Double(center - left)) }
            }
            if right > center {
                for j in center..<right { try set(j, i, Double(right - j) / Double(right - center)) }
            }
        }
        return try MiscSupport.tensor(layer.dtype, shape: [spectrumBins, melBins], out)
    }
}
