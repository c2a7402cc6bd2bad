import Foundation
import KilnIR
import KilnRuntime

/// The optimizer's fused attention on the CPU, per (batch, head) in parallel, over blocks of query rows: the
/// block's scores `scale * Q Kᵀ` come from the SGEMM reading Q and K through their views (no gathering), then
/// the mask, a softmax per row, and `P V` from the SGEMM again, written through the output view. Only one
/// block of scores (`block` x keys) exists at a time, in a per-thread scratch. Computes in Float (inputs of other
/// float types are widened and the result narrowed).
enum FusedAttentionKernel {
    /// Query rows per block.
    static let block = 64

    static func run(_ layer: FusedAttentionLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let qt = try inputs.tensor(0)
        let (q, k, v) = try (widened(qt), widened(inputs.tensor(1)), widened(inputs.tensor(2)))
        let mask = try inputs.optionalTensor(3).map { t in
            guard try Broadcast.shape(t.shape, layer.scoreShape) == layer.scoreShape else {
                throw KilnError.shapeMismatch(
                    "fused attention mask \(t.shape) does not broadcast to \(layer.scoreShape)")
            }
            return (values: try widened(t), strides: Broadcast.strides(of: t.shape, broadcastTo: layer.scoreShape))
        }
        try layer.checkViews(inputCounts: [q.count, k.count, v.count])
        let y = Tensor.build(Float.self, shape: layer.outputShape) { out in
            guard let o = out.baseAddress else { return }
            q.withUnsafeBuffer(as: Float.self) { qb in
                k.withUnsafeBuffer(as: Float.self) { kb in
                    v.withUnsafeBuffer(as: Float.self) { vb in
                        withMask(mask?.values) { maskValues in
                            guard let qp = qb.baseAddress, let kp = kb.baseAddress, let vp = vb.baseAddress else {
                                return
                            }
                            let operands = Operands(
                                q: qp, k: kp, v: vp, out: o, mask: maskValues.map { ($0, mask?.strides ?? []) })
                            let shared = UncheckedSendable(operands)
                            Parallel.forEach(layer.batch * layer.heads, threads: threads) { jobs in
                                run(layer, shared.value, jobs: jobs)
                            }
                        }
                    }
                }
            }
        }
        return qt.dtype == .float32 ? y : try y.cast(to: qt.dtype)
    }

    private struct Operands {
        let q: UnsafePointer<Float>
        let k: UnsafePointer<Float>
        let v: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
        let mask: (values: UnsafePointer<Float>, strides: [Int])?
    }

    /// The (batch, head) pairs in `jobs`, block by block.
    private static func run(_ layer: FusedAttentionLayer, _ x: Operands, jobs: Range<Int>) {
        let (heads, sq, sk, d, dv) = (
            layer.heads, layer.queryLength, layer.keyLength, layer.headSize, layer.valueHeadSize
        )
        let (qs, ks, vs, os) = (layer.query.strides, layer.key.strides, layer.value.strides, layer.output.strides)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(block * sk, 1))
        defer { scores.deallocate() }
        // The SGEMM writes rows of contiguous columns; an output view whose columns are not adjacent gets a copy.
        let direct = os[3] == 1
        let staging = UnsafeMutablePointer<Float>.allocate(capacity: direct ? 1 : max(block * dv, 1))
        defer { staging.deallocate() }
        var empty = [Bool](repeating: false, count: block)
        for job in jobs {
            let (b, h) = (job / heads, job % heads)
            let qBase = x.q + layer.query.offset + b * qs[0] + h * qs[1]
            let keys = FloatMatrix(
                base: x.k + layer.key.offset + b * ks[0] + h * ks[1], rowStride: ks[3], columnStride: ks[2])
            let values = FloatMatrix(
                base: x.v + layer.value.offset + b * vs[0] + h * vs[1], rowStride: vs[2], columnStride: vs[3])
            let oBase = x.out + layer.output.offset + b * os[0] + h * os[1]
            for start in stride(from: 0, to: sq, by: block) {
                let rows = min(block, sq - start)
                SGEMM.gemm(
                    m: rows, n: sk, k: d,
                    a: FloatMatrix(base: qBase + start * qs[2], rowStride: qs[2], columnStride: qs[3]),
                    b: keys, c: scores, ldc: sk, alpha: layer.scale, threads: 1)
                for r in 0..<rows {
                    let row = scores + r * sk
                    if let mask = x.mask {
                        let ms = mask.strides
                        let m = mask.values + b * ms[0] + h * ms[1] + (start + r) * ms[2]
                        for j in 0..<sk { row[j] += m[j * ms[3]] }
                    }
                    empty[r] = !softmax(row, count: sk)
                }
                let target = direct ? oBase + start * os[2] : staging
                let ldc = direct ? os[2] : dv
                SGEMM.gemm(
                    m: rows, n: dv, k: sk, a: FloatMatrix(base: scores, rowStride: sk, columnStride: 1), b: values,
                    c: target, ldc: ldc, threads: 1)
                for r in 0..<rows {
                    let line = target + r * ldc
                    // Every key masked, or a NaN score: zeros with the folded guard, NaN as softmax gives.
                    if empty[r] { line.update(repeating: layer.zeroMaskedRows ? 0 : .nan, count: dv) }
                    if !direct {
                        let dst = oBase + (start + r) * os[2]
                        for c in 0..<dv { dst[c * os[3]] = line[c] }
                    }
                }
            }
        }
    }

    /// Softmax of one row in place. Returns false, with the row zeroed, when every score is -inf or one is NaN.
    private static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) -> Bool {
        var top = -Float.infinity
        for j in 0..<count where row[j] > top { top = row[j] }
        var sum: Float = 0
        if top != -.infinity {
            for j in 0..<count {
                row[j] = expf(row[j] - top)
                sum += row[j]
            }
        }
        guard top != -.infinity, !sum.isNaN else {
            row.update(repeating: 0, count: count)
            return false
        }
        for j in 0..<count { row[j] /= sum }
        return true
    }

    private static func widened(_ t: Tensor) throws -> Tensor { t.dtype == .float32 ? t : try t.cast(to: .float32) }

    private static func withMask<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t, t.count > 0 else { return body(nil) }
        return t.withUnsafeBuffer(as: Float.self) { body($0.baseAddress) }
    }
}
