import Foundation

/// One-dimensional complex Fourier transforms in Double on split real/imaginary buffers. Powers of two use an
/// in-place radix-2 FFT; other lengths a recursive mixed-radix Cooley-Tukey over their prime factors (so n_fft
/// = 400, common in speech models, costs n·Σfactors rather than n²), with direct sums for prime lengths.
struct FourierPlan {
    let n: Int
    let inverse: Bool
    /// cos and sin of 2πk/n (sign applied at use), k in 0..<n.
    private let cosTable: [Double]
    private let sinTable: [Double]
    private let powerOfTwo: Bool

    init(length n: Int, inverse: Bool) {
        self.n = n
        self.inverse = inverse
        powerOfTwo = n > 0 && (n & (n - 1)) == 0
        var c = [Double](repeating: 1, count: max(n, 1))
        var s = [Double](repeating: 0, count: max(n, 1))
        for k in 0..<n {
            let angle = 2 * Double.pi * Double(k) / Double(n)
            c[k] = cos(angle)
            s[k] = sin(angle)
        }
        cosTable = c
        sinTable = s
    }

    /// Transforms `re`/`im` (length n) in place, using `scratchRe`/`scratchIm` (length n) for the direct sum.
    /// Forward uses e^{-2πikn/N}; inverse e^{+2πikn/N} and divides by N.
    func transform(
        _ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>,
        scratchRe: UnsafeMutablePointer<Double>, scratchIm: UnsafeMutablePointer<Double>
    ) {
        guard n > 1 else { return }
        let sign: Double = inverse ? 1 : -1
        if powerOfTwo {
            radix2(re, im, sign: sign)
        } else {
            scratchRe.update(from: re, count: n)
            scratchIm.update(from: im, count: n)
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * largestPrimeFactor(n)) { temp in
                // `temp` holds the outputs of one p-point combination step.
                guard let t = temp.baseAddress else { return }
                mixed(scratchRe, scratchIm, stride: 1, count: n, re, im, sign: sign, temp: t)
            }
        }
        if inverse {
            let scale = 1 / Double(n)
            for k in 0..<n {
                re[k] *= scale
                im[k] *= scale
            }
        }
    }

    private func smallestFactor(_ n: Int) -> Int {
        if n % 2 == 0 { return 2 }
        var f = 3
        while f * f <= n {
            if n % f == 0 { return f }
            f += 2
        }
        return n
    }

    private func largestPrimeFactor(_ n: Int) -> Int {
        var rest = n
        var largest = 1
        while rest > 1 {
            let f = smallestFactor(rest)
            largest = max(largest, f)
            rest /= f
        }
        return largest
    }

    /// Decimation in time: the length-`count` transform of the input read with `stride` is written contiguously
    /// to `outRe`/`outIm`. Splits off the smallest prime factor p: p sub-transforms of the interleaved
    /// sequences, then for each k one p-point combination with twiddles. Roots of unity of length `count` are
    /// the table's entries at multiples of n / count.
    private func mixed(
        _ inRe: UnsafePointer<Double>, _ inIm: UnsafePointer<Double>, stride s: Int, count: Int,
        _ outRe: UnsafeMutablePointer<Double>, _ outIm: UnsafeMutablePointer<Double>, sign: Double,
        temp: UnsafeMutablePointer<Double>
    ) {
        if count == 1 {
            outRe[0] = inRe[0]
            outIm[0] = inIm[0]
            return
        }
        let step = n / count
        let p = smallestFactor(count)
        let m = count / p
        if m == 1 {
            for k in 0..<count {
                var sr = 0.0
                var si = 0.0
                for t in 0..<count {
                    let index = (t * k % count) * step
                    let c = cosTable[index]
                    let sn = sign * sinTable[index]
                    sr += inRe[t * s] * c - inIm[t * s] * sn
                    si += inRe[t * s] * sn + inIm[t * s] * c
                }
                outRe[k] = sr
                outIm[k] = si
            }
            return
        }
        for r in 0..<p {
            mixed(
                inRe + r * s, inIm + r * s, stride: s * p, count: m, outRe + r * m, outIm + r * m, sign: sign,
                temp: temp)
        }
        for k in 0..<m {
            for q in 0..<p {
                let j = k + q * m
                var sr = 0.0
                var si = 0.0
                for r in 0..<p {
                    let index = (r * j % count) * step
                    let c = cosTable[index]
                    let sn = sign * sinTable[index]
                    let (yr, yi) = (outRe[r * m + k], outIm[r * m + k])
                    sr += yr * c - yi * sn
                    si += yr * sn + yi * c
                }
                temp[2 * q] = sr
                temp[2 * q + 1] = si
            }
            for q in 0..<p {
                outRe[k + q * m] = temp[2 * q]
                outIm[k + q * m] = temp[2 * q + 1]
            }
        }
    }

    private func radix2(_ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, sign: Double) {
        // Bit-reversal permutation, then butterflies of doubling span.
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 {
                j ^= bit
                bit >>= 1
            }
            j |= bit
            if i < j {
                swap(&re[i], &re[j])
                swap(&im[i], &im[j])
            }
        }
        var span = 2
        while span <= n {
            let half = span / 2
            let step = n / span
            var start = 0
            while start < n {
                for k in 0..<half {
                    let c = cosTable[k * step]
                    let s = sign * sinTable[k * step]
                    let a = start + k
                    let b = a + half
                    let tr = re[b] * c - im[b] * s
                    let ti = re[b] * s + im[b] * c
                    re[b] = re[a] - tr
                    im[b] = im[a] - ti
                    re[a] += tr
                    im[a] += ti
                }
                start += span
            }
            span <<= 1
        }
    }
}
