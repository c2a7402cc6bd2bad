import KilnIR

/// im2col straight into the SGEMM's packed right-operand layout: column `p` is an output position, depth `k`
/// is (input channel, kernel offset). Writing the panels directly saves a copy of the (large) column matrix.
enum Im2Col {
    static func pack(
        _ x: UnsafePointer<Float>, channels: Int, spatial: [Int], _ r: ConvolutionParameters.Resolved,
        tactic: GemmTactic, threads: Int
    ) -> PackedPanels {
        let packed = PackedPanels(
            extent: r.output.reduce(1, *), depth: channels * r.kernel.reduce(1, *), width: tactic.nr,
            blockSize: tactic.kc)
        if let geometry = Im2ColBlock(x, spatial: spatial, r, tactic: tactic) {
            pack2D(x, into: packed, channels: channels, geometry, threads: threads)
        } else {
            packGeneric(x, into: packed, channels: channels, spatial: spatial, r, threads: threads)
        }
        return packed
    }

    @inline(__always) static func floorDiv(_ a: Int, _ b: Int) -> Int {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// A 1-D or 2-D convolution's im2col (the geometry `Im2ColBlock` reads from the layer), all of it.
    private static func pack2D(
        _ x: UnsafePointer<Float>, into packed: PackedPanels, channels: Int, _ g: Im2ColBlock, threads: Int
    ) {
        let (height, width, strides, dilations, pads) = (g.height, g.width, g.strides, g.dilations, g.pads)
        let (kh, kw) = g.kernel
        let (oh, ow) = g.output
        let positions = oh * ow
        let depth = channels * kh * kw
        let shared = UncheckedSendable((packed, x))
        Parallel.forEach(depth, threads: threads, minimumChunk: max(1, 16384 / max(positions, 1))) { range in
            let (packed, x) = shared.value
            let nr = packed.width
            for k in range {
                let c = k / (kh * kw)
                let ky = (k / kw) % kh
                let kx = k % kw
                let dst = packed.step(k, panel: 0)
                let panelStride = packed.blockDepth(k / packed.blockSize) * nr
                let src = x + c * height * width
                let xOffset = kx * dilations.1 - pads.1
                // Output columns whose input column lies inside the image.
                let lo = xOffset >= 0 ? 0 : (-xOffset + strides.1 - 1) / strides.1
                let hi = min(ow, floorDiv(width - 1 - xOffset, strides.1) + 1)
                guard lo < hi else { continue }
                for oy in 0..<oh {
                    let iy = oy * strides.0 - pads.0 + ky * dilations.0
                    guard iy >= 0, iy < height else { continue }
                    let row = src + iy * width
                    // Output position p lands in panel p / nr at lane p % nr: divide once per row, then step.
                    let first = oy * ow + lo
                    var panel = first / nr
                    var lane = first - panel * nr
                    var ox = lo
                    if strides.1 == 1 {
                        // Consecutive positions are consecutive input pixels: copy a panel's share at a time.
                        while ox < hi {
                            let run = min(hi - ox, nr - lane)
                            (dst + panel * panelStride + lane).update(from: row + ox + xOffset, count: run)
                            ox += run
                            lane += run
                            if lane == nr {
                                lane = 0
                                panel += 1
                            }
                        }
                    } else {
                        while ox < hi {
                            dst[panel * panelStride + lane] = row[ox * strides.1 + xOffset]
                            ox += 1
                            lane += 1
                            if lane == nr {
                                lane = 0
                                panel += 1
                            }
                        }
                    }
                }
            }
        }
    }

    /// Any number of spatial axes (3-D and up), one element at a time.
    private static func packGeneric(
        _ x: UnsafePointer<Float>, into packed: PackedPanels, channels: Int, spatial: [Int],
        _ r: ConvolutionParameters.Resolved, threads: Int
    ) {
        let rank = spatial.count
        let kernelSize = r.kernel.reduce(1, *)
        let positions = r.output.reduce(1, *)
        let inSize = spatial.reduce(1, *)
        let depth = channels * kernelSize
        let inStrides = Broadcast.strides(spatial)
        let nr = packed.width
        let shared = UncheckedSendable((packed, x))
        Parallel.forEach(depth, threads: threads) { range in
            let (packed, x) = shared.value
            var kIndex = [Int](repeating: 0, count: rank)
            var oIndex = [Int](repeating: 0, count: rank)
            for k in range {
                let c = k / kernelSize
                var rest = k % kernelSize
                for a in stride(from: rank - 1, through: 0, by: -1) {
                    kIndex[a] = rest % r.kernel[a]
                    rest /= r.kernel[a]
                }
                let dst = packed.step(k, panel: 0)
                let panelStride = packed.blockDepth(k / packed.blockSize) * nr
                for a in 0..<rank { oIndex[a] = 0 }
                for p in 0..<positions {
                    var offset = c * inSize
                    var inside = true
                    for a in 0..<rank {
                        let i = oIndex[a] * r.strides[a] - r.padsBegin[a] + kIndex[a] * r.dilations[a]
                        if i < 0 || i >= spatial[a] {
                            inside = false
                            break
                        }
                        offset += i * inStrides[a]
                    }
                    if inside { dst[(p / nr) * panelStride + p % nr] = x[offset] }
                    _ = LinearAlgebraSupport.increment(&oIndex, r.output)
                }
            }
        }
    }
}
