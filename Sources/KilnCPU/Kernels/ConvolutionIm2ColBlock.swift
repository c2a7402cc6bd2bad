import KilnIR

/// The im2col geometry of a 1-D or 2-D convolution (what `Im2Col.pack` reads), and one depth block of a few
/// panels of that matrix made on demand for a product that streams B (`SGEMM.multiply(_:columns:packB:...)`):
/// the same elements as `Im2Col.pack`, padding as zeros, laid out as that product reads them (panel after
/// panel, each depth-major, `nr` positions a step).
struct Im2ColBlock {
    let x: UnsafePointer<Float>
    let height: Int
    let width: Int
    let kernel: (Int, Int)
    let strides: (Int, Int)
    let dilations: (Int, Int)
    let pads: (Int, Int)
    let output: (Int, Int)
    let blockSize: Int
    let nr: Int

    /// For 1-D and 2-D convolutions (a 1-D one as one row); nil for more spatial axes.
    init?(_ x: UnsafePointer<Float>, spatial: [Int], _ r: ConvolutionParameters.Resolved, tactic: GemmTactic) {
        self.x = x
        blockSize = tactic.kc
        nr = tactic.nr
        switch spatial.count {
        case 1:
            (height, width) = (1, spatial[0])
            kernel = (1, r.kernel[0])
            strides = (1, r.strides[0])
            dilations = (1, r.dilations[0])
            pads = (0, r.padsBegin[0])
            output = (1, r.output[0])
        case 2:
            (height, width) = (spatial[0], spatial[1])
            kernel = (r.kernel[0], r.kernel[1])
            strides = (r.strides[0], r.strides[1])
            dilations = (r.dilations[0], r.dilations[1])
            pads = (r.padsBegin[0], r.padsBegin[1])
            output = (r.output[0], r.output[1])
        default:
            return nil
        }
    }

    /// Writes panels `panels` of depth block `block` (`depth` = channels × kernel positions in all) into `dst`.
    func pack(block: Int, panels: Range<Int>, depth: Int, into dst: UnsafeMutablePointer<Float>) {
        let (kh, kw) = kernel
        let (oh, ow) = output
        let positions = oh * ow
        let k0 = block * blockSize
        let blockDepth = min(blockSize, depth - k0)
        let panelStride = blockDepth * nr
        let first = panels.lowerBound * nr
        let end = min(panels.upperBound * nr, positions)
        let padded = panels.count * nr
        for k in k0..<(k0 + blockDepth) {
            let out = dst + (k - k0) * nr
            // Position p (from `first`) lands in panel (p - first) / nr at lane (p - first) % nr.
            func zero(_ from: Int, _ to: Int) {
                var p = from
                while p < to {
                    let (panel, lane) = ((p - first) / nr, (p - first) % nr)
                    let run = min(to - p, nr - lane)
                    (out + panel * panelStride + lane).update(repeating: 0, count: run)
                    p += run
                }
            }
            zero(end, first + padded)
            let c = k / (kh * kw)
            let ky = (k / kw) % kh
            let kx = k % kw
            let src = x + c * height * width
            let xOffset = kx * dilations.1 - pads.1
            // Output columns whose input column lies inside the image.
            let lo = xOffset >= 0 ? 0 : (-xOffset + strides.1 - 1) / strides.1
            let hi = max(lo, min(ow, Im2Col.floorDiv(width - 1 - xOffset, strides.1) + 1))
            var p = first
            while p < end {
                let oy = p / ow
                let rowStart = oy * ow
                let rowEnd = min(end, rowStart + ow)
                let iy = oy * strides.0 - pads.0 + ky * dilations.0
                guard iy >= 0, iy < height, lo < hi else {
                    zero(p, rowEnd)
                    p = rowEnd
                    continue
                }
                let (inFrom, inTo) = (max(p, rowStart + lo), min(rowEnd, rowStart + hi))
                zero(p, max(p, min(inFrom, rowEnd)))
                if inFrom < inTo {
                    let row = src + iy * width
                    var q = inFrom
                    while q < inTo {
                        let (panel, lane) = ((q - first) / nr, (q - first) % nr)
                        let run = min(inTo - q, nr - lane)
                        let target = out + panel * panelStride + lane
                        let ox = q - rowStart
                        if strides.1 == 1 {
                            target.update(from: row + ox + xOffset, count: run)
                        } else {
                            for e in 0..<run { target[e] = row[(ox + e) * strides.1 + xOffset] }
                        }
                        q += run
                    }
                }
                zero(max(p, inTo), rowEnd)
                p = rowEnd
            }
        }
    }
}
