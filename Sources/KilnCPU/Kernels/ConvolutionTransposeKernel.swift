import KilnIR
import KilnRuntime

/// Transposed convolution. float32 (and float16/bfloat16 through float32) computes, per image and group,
/// `columns = W_g^T x X_g` with the SGEMM and scatters the columns into the output (col2im); double uses the
/// direct reference loop.
enum DeconvolutionKernel {
    static func run(_ layer: DeconvolutionLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let b = try inputs.optionalTensor(2)
        guard x.dtype == .float32 || LinearAlgebraSupport.isHalf(x.dtype) else {
            return try ConvolutionReference.deconvolution(layer, inputs)
        }
        try LinearAlgebraSupport.requireSameType([x, w] + (b.map { [$0] } ?? []), "deconvolution")
        guard x.rank >= 3, w.rank == x.rank else {
            throw KilnError.shapeMismatch(
                "deconvolution needs X [N, C, ...] and W of the same rank, got \(x.shape), \(w.shape)")
        }
        let group = layer.parameters.group
        let (batch, inChannels) = (x.shape[0], x.shape[1])
        guard group > 0, w.shape[0] == inChannels, inChannels % group == 0 else {
            throw KilnError.shapeMismatch(
                "deconvolution with group \(group): X \(x.shape) and W \(w.shape) do not match")
        }
        let mg = w.shape[1]
        let outChannels = mg * group
        let cg = inChannels / group
        let inSpatial = Array(x.shape.dropFirst(2))
        let weightKernel = Array(w.shape.dropFirst(2))
        let r = try layer.resolve(input: inSpatial, kernel: weightKernel)
        guard r.kernel == weightKernel else {
            throw KilnError.shapeMismatch("kernel_shape \(r.kernel) does not match the weights \(weightKernel)")
        }
        if let b, b.count != outChannels {
            throw KilnError.shapeMismatch("deconvolution bias has \(b.count) elements, \(outChannels) expected")
        }
        let xf = LinearAlgebraSupport.widened(x)
        let wf = LinearAlgebraSupport.widened(w)
        let bias = b.map { LinearAlgebraSupport.widened($0).scalars(as: Float.self) }
        let kernelSize = r.kernel.reduce(1, *)
        let inSize = inSpatial.reduce(1, *)
        let outSize = r.output.reduce(1, *)
        let rows = mg * kernelSize
        let kernelPositions = ConvolutionReference.indices(r.kernel)
        let inPositions = ConvolutionReference.indices(inSpatial)
        let outStrides = Broadcast.strides(r.output)
        // For each (kernel position, input position): the output offset, or -1 when it falls in the padding.
        var targets = [Int](repeating: -1, count: kernelSize * inSize)
        for (kp, kernel) in kernelPositions.enumerated() {
            for (ip, position) in inPositions.enumerated() {
                var offset = 0
                var inside = true
                for a in 0..<position.count {
                    let o = position[a] * r.strides[a] - r.padsBegin[a] + kernel[a] * r.dilations[a]
                    if o < 0 || o >= r.output[a] { inside = false }
                    offset += o * outStrides[a]
                }
                if inside { targets[kp * inSize + ip] = offset }
            }
        }
        let columns = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * inSize, 1))
        defer { columns.deallocate() }
        let y = Tensor.build(Float.self, shape: [batch, outChannels] + r.output) { out in
            guard let o = out.baseAddress else { return }
            for m in 0..<outChannels {
                let v = bias?[m] ?? 0
                for n in 0..<batch { (o + (n * outChannels + m) * outSize).update(repeating: v, count: outSize) }
            }
            xf.withUnsafeBuffer(as: Float.self) { xb in
                wf.withUnsafeBuffer(as: Float.self) { wb in
                    guard let xp = xb.baseAddress, let wp = wb.baseAddress else { return }
                    for n in 0..<batch {
                        for g in 0..<group {
                            SGEMM.gemm(
                                m: rows, n: inSize, k: cg,
                                a: FloatMatrix(base: wp + g * cg * rows, rowStride: 1, columnStride: rows),
                                b: FloatMatrix(
                                    base: xp + (n * inChannels + g * cg) * inSize, rowStride: inSize, columnStride: 1),
                                c: columns, ldc: inSize, threads: threads)
                            for co in 0..<mg {
                                let dst = o + (n * outChannels + g * mg + co) * outSize
                                for kp in 0..<kernelSize {
                                    let src = columns + (co * kernelSize + kp) * inSize
                                    let t = kp * inSize
                                    for ip in 0..<inSize where targets[t + ip] >= 0 { dst[targets[t + ip]] += src[ip] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return LinearAlgebraSupport.narrowed(y, to: x.dtype)
    }
}
