import Foundation

/// One-dimensional complex Fourier transforms in Double on split real/imaginary buffers. Powers of two use an
/// in-place radix-2 FFT; other lengths a direct O(n²) sum over a precomputed twiddle table, exact enough for
/// the reference backend.
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
            for k in 0..<n {
                var sr = 0.0
                var si = 0.0
                var index = 0
                for t in 0..<n {
                    let c = cosTable[index]
                    let s = sign * sinTable[index]
                    sr += re[t] * c - im[t] * s
                    si += re[t] * s + im[t] * c
                    index += k
                    if index >= n { index -= n }
                }
                scratchRe[k] = sr
                scratchIm[k] = si
            }
            re.update(from: scratchRe, count: n)
            im.update(from: scratchIm, count: n)
        }
        if inverse {
            let scale = 1 / Double(n)
            for k in 0..<n {
                re[k] *= scale
                im[k] *= scale
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
