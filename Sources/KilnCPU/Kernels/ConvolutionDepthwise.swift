import CKilnMicroKernels
import KilnIR

/// Depthwise convolution (one filter per channel: group = input channels = output channels, 1-D or 2-D)
/// computed directly, channel by channel, in parallel over channels. As im2col + SGEMM it would be one
/// single-row product per channel, which no GEMM runs well. The AVX2/FMA loop runs where the CPU has it.
enum DepthwiseConvolution {
    static func applies(_ g: ConvolutionGeometry) -> Bool {
        g.group == g.inChannels && g.outChannels == g.inChannels && g.group > 1 && (1...2).contains(g.inSpatial.count)
    }

    /// `y = conv(x, w)` then the epilogue (bias, residual, activation) per channel, into `out` ([N, C, spatial]).
    static func run(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
        _ g: ConvolutionGeometry, epilogue: GemmEpilogue, threads: Int
    ) {
        let r = g.r
        let twoD = g.inSpatial.count == 2
        let (height, width) = twoD ? (g.inSpatial[0], g.inSpatial[1]) : (1, g.inSpatial[0])
        let (kh, kw) = twoD ? (r.kernel[0], r.kernel[1]) : (1, r.kernel[0])
        let (sy, sx) = twoD ? (r.strides[0], r.strides[1]) : (1, r.strides[0])
        let (py, px) = twoD ? (r.padsBegin[0], r.padsBegin[1]) : (0, r.padsBegin[0])
        let (dy, dx) = twoD ? (r.dilations[0], r.dilations[1]) : (1, r.dilations[0])
        let (oh, ow) = twoD ? (r.output[0], r.output[1]) : (1, r.output[0])
        let (inSize, outSize, taps, channels) = (g.inSize, g.outSize, kh * kw, g.inChannels)
        let kernel = GemmTactic.MicroKernel.avx2x6x16.isAvailable ? kiln_depthwise2d_avx2 : kiln_depthwise2d
        let shared = UncheckedSendable((x, w, out))
        Parallel.forEach(g.batch * channels, threads: threads, minimumChunk: max(1, 8192 / max(outSize * taps, 1))) {
            range in
            let (x, w, out) = shared.value
            let scratch = UnsafeMutablePointer<Float>.allocate(
                capacity: max(kiln_depthwise2d_scratch(kh, kw, sy, sx, dy, dx, oh, ow), 1))
            defer { scratch.deallocate() }
            for plane in range {
                let c = plane % channels
                let y = out + plane * outSize
                kernel(
                    x + plane * inSize, height, width, w + c * taps, kh, kw, sy, sx, py, px, dy, dx, y, oh, ow,
                    scratch)
                if !epilogue.isEmpty {
                    // The epilogue's row is the channel; its residual is laid out like the output planes.
                    var perPlane = epilogue
                    perPlane.residual = epilogue.residual.map { $0 + (plane - c) * outSize }
                    perPlane.apply(y, ldc: outSize, row: c, column: 0, rows: 1, cols: outSize)
                }
            }
        }
    }
}
