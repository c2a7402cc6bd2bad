import CKilnMicroKernels
import KilnIR

/// What SGEMM does to each finished tile of C while the tile is still in L1, instead of another pass over
/// memory: add a per-row bias (a convolution's output channel) or a per-column bias (a product's), add a
/// residual laid out like C, then apply an activation. The order is the IR's `Epilogue` order.
struct GemmEpilogue {
    var rowBias: UnsafePointer<Float>?
    var columnBias: UnsafePointer<Float>?
    var residual: UnsafePointer<Float>?
    var residualStride = 0
    var activation: EpilogueActivation?

    var isEmpty: Bool { rowBias == nil && columnBias == nil && residual == nil && activation == nil }

    /// Applies to the `rows` x `cols` block at `c` whose top-left element is C[row, column].
    @inline(__always)
    func apply(_ c: UnsafeMutablePointer<Float>, ldc: Int, row: Int, column: Int, rows: Int, cols: Int) {
        for r in 0..<rows {
            let dst = c + r * ldc
            if let rowBias {
                let b = rowBias[row + r]
                for j in 0..<cols { dst[j] += b }
            }
            if let columnBias {
                let b = columnBias + column
                for j in 0..<cols { dst[j] += b[j] }
            }
            if let residual {
                let src = residual + (row + r) * residualStride + column
                for j in 0..<cols { dst[j] += src[j] }
            }
            if let activation { Self.activate(dst, count: cols, activation) }
        }
    }

    /// A clamp that stands for the activation (ReLU, clip), which the C micro-kernels apply in registers.
    private var clampBounds: (low: Float, high: Float)? {
        switch activation {
        case .relu: (0, .infinity)
        case .clip(let low, let high): (low ?? -.infinity, high ?? .infinity)
        default: nil
        }
    }

    /// What the C micro-kernels apply to the tile whose top-left element is C[row, column].
    func tileEpilogue(row: Int, column: Int) -> kiln_tile_epilogue {
        let bounds = clampBounds
        return kiln_tile_epilogue(
            row_bias: rowBias.map { $0 + row }, column_bias: columnBias.map { $0 + column },
            residual: residual.map { $0 + row * residualStride + column },
            residual_stride: residualStride, clamps: bounds == nil ? 0 : 1, low: bounds?.low ?? 0,
            high: bounds?.high ?? 0)
    }

    /// The activation left to apply after a C micro-kernel's epilogue (one it cannot express as a clamp).
    var activationAfterTile: EpilogueActivation? { clampBounds == nil ? activation : nil }

    /// The same formulas as the standalone pointwise kernels, so fusing does not change results, except the erf
    /// GELU: a vectorized form (`kiln_gelu_erf`, within 1e-6 of the libm formula, which costs about as much as
    /// the product before it when each element calls erff).
    @inline(__always)
    static func activate(_ p: UnsafeMutablePointer<Float>, count: Int, _ activation: EpilogueActivation) {
        switch activation {
        case .relu:
            for j in 0..<count where p[j] < 0 { p[j] = 0 }
        case .clip(let lo, let hi):
            let f = ClampFn<Float>(low: lo ?? -.infinity, high: hi ?? .infinity)
            for j in 0..<count { p[j] = f(p[j]) }
        case .leakyRelu(let alpha):
            for j in 0..<count where p[j] < 0 { p[j] *= alpha }
        case .sigmoid:
            let f = SigmoidFn<Float>()
            for j in 0..<count { p[j] = f(p[j]) }
        case .tanh:
            for j in 0..<count { p[j] = Float.tanh(p[j]) }
        case .gelu(tanh: false):
            if GemmTactic.MicroKernel.avx2x6x16.isAvailable {
                kiln_gelu_erf_avx2(p, count)
            } else {
                kiln_gelu_erf(p, count)
            }
        case .gelu(tanh: true):
            let f = GeluFn<Float>(approximate: true)
            for j in 0..<count { p[j] = f(p[j]) }
        case .silu:
            let f = SigmoidFn<Float>()
            for j in 0..<count { p[j] *= f(p[j]) }
        }
    }
}
