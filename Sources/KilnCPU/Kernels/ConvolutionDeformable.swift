import KilnIR

/// DeformConv (2-D): each kernel tap samples the input at its regular position plus a learned offset, with
/// bilinear interpolation (zero outside the image), optionally scaled by a mask. Computed in double.
enum DeformableConvolution {
    static func run(_ layer: DeformableConvolutionLayer, _ inputs: [Value?]) throws -> Tensor {
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let offsets = try inputs.tensor(2)
        let b = try inputs.optionalTensor(3)
        let mask = try inputs.optionalTensor(4)
        guard x.dtype.isFloatingPoint else { throw KilnError.unsupported("deformConv of \(x.dtype.onnxName)") }
        guard x.rank == 4 else { throw KilnError.unsupported("deformConv supports 2-D images, got X \(x.shape)") }
        let g = try ConvolutionGeometry(layer.parameters, x: x.shape, w: w.shape)
        let (height, width) = (x.shape[2], x.shape[3])
        let (kh, kw) = (g.r.kernel[0], g.r.kernel[1])
        let (oh, ow) = (g.r.output[0], g.r.output[1])
        let offsetGroups = layer.offsetGroup
        guard offsetGroups > 0, g.inChannels % offsetGroups == 0,
            offsets.shape == [g.batch, offsetGroups * 2 * kh * kw, oh, ow]
        else {
            throw KilnError.shapeMismatch("deformConv offset shape \(offsets.shape) does not match the geometry")
        }
        if let mask, mask.shape != [g.batch, offsetGroups * kh * kw, oh, ow] {
            throw KilnError.shapeMismatch("deformConv mask shape \(mask.shape) does not match the geometry")
        }
        if let b, b.count != g.outChannels {
            throw KilnError.shapeMismatch("deformConv bias has \(b.count) elements, \(g.outChannels) expected")
        }
        let xv = try x.doubleValues()
        let wv = try w.doubleValues()
        let ov = try offsets.doubleValues()
        let mv = try mask?.doubleValues()
        let bv = try b?.doubleValues()
        let channelsPerOffsetGroup = g.inChannels / offsetGroups
        let taps = kh * kw
        let positions = oh * ow
        // Sampled columns for one image: [C * taps, positions], then a plain matrix product with the weights.
        var columns = [Double](repeating: 0, count: g.inChannels * taps * positions)
        var out = [Double](repeating: 0, count: g.batch * g.outChannels * positions)
        for n in 0..<g.batch {
            for c in 0..<g.inChannels {
                let og = c / channelsPerOffsetGroup
                let image = (n * g.inChannels + c) * height * width
                for t in 0..<taps {
                    let (ky, kx) = (t / kw, t % kw)
                    let offsetRow = ((n * offsetGroups + og) * 2 * taps + 2 * t) * positions
                    let maskRow = ((n * offsetGroups + og) * taps + t) * positions
                    for p in 0..<positions {
                        let (oy, ox) = (p / ow, p % ow)
                        let y =
                            Double(oy * g.r.strides[0] - g.r.padsBegin[0] + ky * g.r.dilations[0]) + ov[offsetRow + p]
                        let xx =
                            Double(ox * g.r.strides[1] - g.r.padsBegin[1] + kx * g.r.dilations[1])
                            + ov[offsetRow + positions + p]
                        var v = bilinear(xv, image, height, width, y, xx)
                        if let mv { v *= mv[maskRow + p] }
                        columns[(c * taps + t) * positions + p] = v
                    }
                }
            }
            let (mg, depth) = (g.groupOutChannels, g.groupInChannels * taps)
            for m in 0..<g.outChannels {
                let group = m / mg
                let row = (n * g.outChannels + m) * positions
                for p in 0..<positions { out[row + p] = bv?[m] ?? 0 }
                for d in 0..<depth {
                    let weight = wv[m * depth + d]
                    let column = (group * depth + d) * positions
                    for p in 0..<positions { out[row + p] += weight * columns[column + p] }
                }
            }
        }
        return try Tensor.fromDoubles(out, shape: g.outShape, dtype: x.dtype)
    }

    /// The image value at real position (y, x); each of the four neighbours outside the image counts as zero.
    private static func bilinear(_ v: [Double], _ base: Int, _ h: Int, _ w: Int, _ y: Double, _ x: Double) -> Double {
        guard y > -1, y < Double(h), x > -1, x < Double(w) else { return 0 }
        let y0 = Int(y.rounded(.down))
        let x0 = Int(x.rounded(.down))
        let (ly, lx) = (y - Double(y0), x - Double(x0))
        func at(_ r: Int, _ c: Int) -> Double { r >= 0 && r < h && c >= 0 && c < w ? v[base + r * w + c] : 0 }
        return (1 - ly) * (1 - lx) * at(y0, x0) + (1 - ly) * lx * at(y0, x0 + 1) + ly * (1 - lx) * at(y0 + 1, x0)
            + ly * lx * at(y0 + 1, x0 + 1)
    }
}
