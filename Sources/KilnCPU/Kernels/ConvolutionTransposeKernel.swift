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
        let geometry = try DeconvolutionGeometry(layer, x: x, w: w, b: b)
        let (batch, inChannels, outChannels) = (geometry.batch, geometry.inChannels, geometry.outChannels)
        let (mg, cg, group, r) = (geometry.mg, geometry.cg, layer.parameters.group, geometry.resolved)
        let xf = LinearAlgebraSupport.widened(x)
        let wf = LinearAlgebraSupport.widened(w)
        let bias = b.map { LinearAlgebraSupport.widened($0).scalars(as: Float.self) }
        let kernelSize = r.kernel.reduce(1, *)
        let inSize = geometry.inSpatial.reduce(1, *)
        let outSize = r.output.reduce(1, *)
        let rows = mg * kernelSize
        let targets = geometry.targets()
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
