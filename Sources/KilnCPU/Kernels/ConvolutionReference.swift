import KilnIR

/// Direct-loop convolutions for the types and variants without a fast path: double Conv, ConvInteger,
/// ConvTranspose and Col2Im. Floating-point data is computed in double, integer data in int64.
enum ConvolutionReference {
    /// All multi-indices of `shape`, row-major.
    static func indices(_ shape: [Int]) -> [[Int]] {
        let total = Tensor.elementCount(shape)
        var result: [[Int]] = []
        result.reserveCapacity(total)
        guard total > 0 else { return result }
        var index = [Int](repeating: 0, count: shape.count)
        repeat { result.append(index) } while LinearAlgebraSupport.increment(&index, shape)
        return result
    }

    /// y[n, m, o] = bias[m] + sum over c, k of x[n, g*Cg + c, o*s - p + k*d] * w[m, c, k].
    static func direct<T: Numeric>(_ g: ConvolutionGeometry, _ x: [T], _ w: [T], _ bias: [T]?) -> [T] {
        let r = g.r
        let outPositions = indices(r.output)
        let kernelPositions = indices(r.kernel)
        let inStrides = Broadcast.strides(g.inSpatial)
        let (mg, cg) = (g.groupOutChannels, g.groupInChannels)
        var out = [T](repeating: 0, count: g.batch * g.outChannels * g.outSize)
        var position = [Int](repeating: 0, count: r.output.count)
        for n in 0..<g.batch {
            for m in 0..<g.outChannels {
                let group = m / mg
                for (o, out0) in outPositions.enumerated() {
                    var acc: T = bias?[m] ?? 0
                    for (kp, kernel) in kernelPositions.enumerated() {
                        var offset = 0
                        var inside = true
                        for a in 0..<out0.count {
                            position[a] = out0[a] * r.strides[a] - r.padsBegin[a] + kernel[a] * r.dilations[a]
                            if position[a] < 0 || position[a] >= g.inSpatial[a] { inside = false }
                            offset += position[a] * inStrides[a]
                        }
                        guard inside else { continue }
                        for c in 0..<cg {
                            let xi = (n * g.inChannels + group * cg + c) * g.inSize + offset
                            let wi = (m * cg + c) * kernelPositions.count + kp
                            acc += x[xi] * w[wi]
                        }
                    }
                    out[(n * g.outChannels + m) * g.outSize + o] = acc
                }
            }
        }
        return out
    }

    static func forward(_ g: ConvolutionGeometry, _ x: Tensor, _ w: Tensor, _ b: Tensor?) throws -> Tensor {
        let y = direct(g, try x.doubleValues(), try w.doubleValues(), try b?.doubleValues())
        return try Tensor.fromDoubles(y, shape: g.outShape, dtype: x.dtype)
    }

    /// ConvInteger: (x - x_zero_point) * (w - w_zero_point[m]) accumulated in int32.
    static func integer(_ p: ConvolutionParameters, _ inputs: [Value?]) throws -> Tensor {
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let g = try ConvolutionGeometry(p, x: x.shape, w: w.shape)
        let xZero = try LinearAlgebraSupport.integers(inputs.optionalTensor(2))
        let wZero = try LinearAlgebraSupport.integers(inputs.optionalTensor(3))
        guard xZero.count == 1, wZero.count == 1 || wZero.count == g.outChannels else {
            throw KilnError.shapeMismatch("convInteger zero points: x needs a scalar, w a scalar or one per channel")
        }
        let xv = try x.int64Values().map { $0 - xZero[0] }
        let perChannel = g.outChannels > 0 ? w.count / g.outChannels : 0
        let wv = try w.int64Values().enumerated().map { i, v in
            v - wZero[wZero.count == 1 ? 0 : i / max(perChannel, 1)]
        }
        let y = direct(g, xv, wv, nil)
        return Tensor(shape: g.outShape, scalars: y.map { Int32(truncatingIfNeeded: $0) })
    }

    /// ConvTranspose by scattering each input element through the kernel.
    static func deconvolution(_ layer: DeconvolutionLayer, _ inputs: [Value?]) throws -> Tensor {
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let b = try inputs.optionalTensor(2)
        guard x.dtype.isFloatingPoint else { throw KilnError.unsupported("deconvolution of \(x.dtype.onnxName)") }
        let geometry = try DeconvolutionGeometry(layer, x: x, w: w, b: b)
        let (batch, inChannels, outChannels) = (geometry.batch, geometry.inChannels, geometry.outChannels)
        let (mg, cg, r) = (geometry.mg, geometry.cg, geometry.resolved)
        let xv = try x.doubleValues()
        let wv = try w.doubleValues()
        let bv = try b?.doubleValues()
        let outSize = r.output.reduce(1, *)
        let inSize = geometry.inSpatial.reduce(1, *)
        let kernelSize = r.kernel.reduce(1, *)
        let targets = geometry.targets()
        var out = [Double](repeating: 0, count: batch * outChannels * outSize)
        for n in 0..<batch {
            for m in 0..<outChannels { for o in 0..<outSize { out[(n * outChannels + m) * outSize + o] = bv?[m] ?? 0 } }
            for kp in 0..<kernelSize {
                for ip in 0..<inSize {
                    let offset = targets[kp * inSize + ip]
                    guard offset >= 0 else { continue }
                    for ci in 0..<inChannels {
                        let v = xv[(n * inChannels + ci) * inSize + ip]
                        let group = ci / cg
                        for co in 0..<mg {
                            let wi = (ci * mg + co) * kernelSize + kp
                            out[(n * outChannels + group * mg + co) * outSize + offset] += v * wv[wi]
                        }
                    }
                }
            }
        }
        return try Tensor.fromDoubles(out, shape: [batch, outChannels] + r.output, dtype: x.dtype)
    }

    /// Col2Im: adds each block column back at its sliding-window position.
    static func col2im(_ layer: Col2ImLayer, _ inputs: [Value?]) throws -> Tensor {
        let x = try inputs.tensor(0)
        let image = try inputs.tensor(1).intValues()
        let block = try inputs.tensor(2).intValues()
        let rank = image.count
        guard x.rank == 3, block.count == rank, rank > 0, block.allSatisfy({ $0 > 0 }) else {
            throw KilnError.shapeMismatch("col2im needs input [N, C*prod(block), L] and matching image/block shapes")
        }
        func list(_ l: [Int], _ n: Int, _ d: Int) throws -> [Int] {
            if l.isEmpty { return Array(repeating: d, count: n) }
            guard l.count == n else {
                throw KilnError.shapeMismatch("col2im attribute has \(l.count) entries, \(n) expected")
            }
            return l
        }
        let strides = try list(layer.strides, rank, 1)
        let dilations = try list(layer.dilations, rank, 1)
        let pads = try list(layer.pads, 2 * rank, 0)
        let blockSize = block.reduce(1, *)
        guard x.shape[1] % blockSize == 0, strides.allSatisfy({ $0 > 0 }) else {
            throw KilnError.shapeMismatch(
                "col2im: channel axis \(x.shape[1]) is not a multiple of the block size \(blockSize)")
        }
        let channels = x.shape[1] / blockSize
        var grid = [Int](repeating: 0, count: rank)
        for a in 0..<rank {
            grid[a] = (image[a] + pads[a] + pads[a + rank] - (dilations[a] * (block[a] - 1) + 1)) / strides[a] + 1
        }
        let blocks = Tensor.elementCount(grid)
        guard grid.allSatisfy({ $0 >= 0 }), blocks == x.shape[2] else {
            throw KilnError.shapeMismatch("col2im: \(x.shape[2]) blocks given, the geometry makes \(blocks)")
        }
        let xv = try x.doubleValues()
        let imageSize = image.reduce(1, *)
        let imageStrides = Broadcast.strides(image)
        let gridPositions = indices(grid)
        let blockPositions = indices(block)
        let batch = x.shape[0]
        var out = [Double](repeating: 0, count: batch * channels * imageSize)
        for n in 0..<batch {
            for c in 0..<channels {
                for (kp, kernel) in blockPositions.enumerated() {
                    let row = (n * channels * blockSize + c * blockSize + kp) * blocks
                    for (l, position) in gridPositions.enumerated() {
                        var offset = 0
                        var inside = true
                        for a in 0..<rank {
                            let i = position[a] * strides[a] - pads[a] + kernel[a] * dilations[a]
                            if i < 0 || i >= image[a] { inside = false }
                            offset += i * imageStrides[a]
                        }
                        if inside { out[(n * channels + c) * imageSize + offset] += xv[row + l] }
                    }
                }
            }
        }
        return try Tensor.fromDoubles(out, shape: [batch, channels] + image, dtype: x.dtype)
    }
}
