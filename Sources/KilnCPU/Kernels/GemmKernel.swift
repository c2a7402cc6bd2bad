/// Single-precision matrix multiply, `C = alpha * A x B (+ C)`, the engine of MatMul, Gemm and Convolution.
///
/// Both operands are packed into panels (`PackedPanels`): A in strips of `mr` rows, B in strips of `nr`
/// columns, blocked by `kc` along the depth so one B strip (kc x nr) stays in L1 and one A tile (mc x kc) in L2.
/// The register-blocked micro-kernel keeps a 6 x 8 tile of C in SIMD registers. 6 x 8 is chosen for the default
/// x86-64 target (SSE2, 16 registers of 4 floats: 12 accumulators, 2 B vectors, 1 broadcast); it stays correct
/// and reasonably fast when the package is built for AVX2. Work is split over tiles of C (mc x nc), which are
/// independent, so threads never share an output element.
enum SGEMM {
    static let mr = 6
    static let nr = 8
    static let kc = 256
    /// Rows of C per task: a multiple of `mr`, sized so the A tile (mc x kc floats) fits in L2.
    static let mc = 120
    /// Columns of C per task: a multiple of `nr`.
    static let nc = 192

    typealias Vector = SIMD8<Float>

    /// Multiplies packed operands into `c` (row-major with row stride `ldc`). `a.extent` rows, `b.extent`
    /// columns, common depth. With `accumulate` the product is added to C, otherwise it replaces C.
    static func multiply(
        _ a: PackedPanels, _ b: PackedPanels, into c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, accumulate: Bool = false, threads: Int
    ) {
        let m = a.extent
        let n = b.extent
        guard m > 0, n > 0 else { return }
        if a.depth == 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let useThreads = m * n * a.depth < 64 * 64 * 64 ? 1 : threads
        // Enough tasks to balance the threads: shrink the tiles along the long side when the defaults give few.
        var rowsPerTile = mc
        var columnsPerTile = nc
        let wanted = useThreads > 1 ? 3 * useThreads : 1
        if (m + mc - 1) / mc * ((n + nc - 1) / nc) < wanted {
            if m >= n {
                rowsPerTile = max(mr, ((m + wanted - 1) / wanted + mr - 1) / mr * mr)
            } else {
                columnsPerTile = max(nr, ((n + wanted - 1) / wanted + nr - 1) / nr * nr)
            }
        }
        let mTiles = (m + rowsPerTile - 1) / rowsPerTile
        let nTiles = (n + columnsPerTile - 1) / columnsPerTile
        let shared = UncheckedSendable((a, b, c))
        Parallel.forEach(mTiles * nTiles, threads: useThreads) { range in
            let (a, b, c) = shared.value
            for t in range {
                let rows = (t / nTiles * rowsPerTile / mr)..<min((t / nTiles + 1) * rowsPerTile / mr, a.panelCount)
                let columns =
                    (t % nTiles * columnsPerTile / nr)..<min((t % nTiles + 1) * columnsPerTile / nr, b.panelCount)
                tile(a, b, c, ldc: ldc, rowPanels: rows, columnPanels: columns, alpha: alpha, accumulate: accumulate)
            }
        }
    }

    /// Packs and multiplies: `C[m x n] = alpha * A[m x k] x B[k x n] (+ C)` for strided views A and B.
    static func gemm(
        m: Int, n: Int, k: Int, a: FloatMatrix, b: FloatMatrix, c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, accumulate: Bool = false, threads: Int
    ) {
        let pa = PackedPanels.pack(a, extent: m, depth: k, width: mr, threads: threads)
        let pb = PackedPanels.pack(transposedView(b), extent: n, depth: k, width: nr, threads: threads)
        multiply(pa, pb, into: c, ldc: ldc, alpha: alpha, accumulate: accumulate, threads: threads)
    }

    /// B as the packer reads it: element (column, depth).
    static func transposedView(_ b: FloatMatrix) -> FloatMatrix {
        FloatMatrix(base: b.base, rowStride: b.columnStride, columnStride: b.rowStride)
    }

    private static func tile(
        _ a: PackedPanels, _ b: PackedPanels, _ c: UnsafeMutablePointer<Float>, ldc: Int,
        rowPanels: Range<Int>, columnPanels: Range<Int>, alpha: Float, accumulate: Bool
    ) {
        for p in 0..<a.blockCount {
            let depth = a.blockDepth(p)
            let add = accumulate || p > 0
            for j in columnPanels {
                let bp = UnsafePointer(b.panel(p, j))
                let col = j * nr
                let cols = min(nr, b.extent - col)
                for i in rowPanels {
                    let row = i * mr
                    let rows = min(mr, a.extent - row)
                    microKernel(
                        depth, UnsafePointer(a.panel(p, i)), bp, c + row * ldc + col, ldc: ldc, rows: rows, cols: cols,
                        alpha: alpha, accumulate: add)
                }
            }
        }
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    /// One 6 x 8 tile of C over `depth` steps of packed A (6 floats a step) and packed B (8 floats a step).
    @inline(never)
    private static func microKernel(
        _ depth: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        ldc: Int, rows: Int, cols: Int, alpha: Float, accumulate: Bool
    ) {
        var c0 = Vector()
        var c1 = Vector()
        var c2 = Vector()
        var c3 = Vector()
        var c4 = Vector()
        var c5 = Vector()
        var ap = a
        var bp = b
        for _ in 0..<depth {
            let bv = load(bp)
            c0 += Vector(repeating: ap[0]) * bv
            c1 += Vector(repeating: ap[1]) * bv
            c2 += Vector(repeating: ap[2]) * bv
            c3 += Vector(repeating: ap[3]) * bv
            c4 += Vector(repeating: ap[4]) * bv
            c5 += Vector(repeating: ap[5]) * bv
            ap += mr
            bp += nr
        }
        if alpha != 1 {
            let s = Vector(repeating: alpha)
            c0 *= s
            c1 *= s
            c2 *= s
            c3 *= s
            c4 *= s
            c5 *= s
        }
        if rows == mr && cols == nr {
            store(c0, c, accumulate)
            store(c1, c + ldc, accumulate)
            store(c2, c + 2 * ldc, accumulate)
            store(c3, c + 3 * ldc, accumulate)
            store(c4, c + 4 * ldc, accumulate)
            store(c5, c + 5 * ldc, accumulate)
            return
        }
        let tile = (c0, c1, c2, c3, c4, c5)
        withUnsafeBytes(of: tile) { raw in
            let t = raw.bindMemory(to: Float.self)
            for r in 0..<rows {
                let dst = c + r * ldc
                for j in 0..<cols {
                    let v = t[r * nr + j]
                    dst[j] = accumulate ? dst[j] + v : v
                }
            }
        }
    }

    @inline(__always)
    private static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        let raw = UnsafeMutableRawPointer(p)
        if accumulate {
            raw.storeBytes(of: raw.loadUnaligned(as: Vector.self) + v, as: Vector.self)
        } else {
            raw.storeBytes(of: v, as: Vector.self)
        }
    }
}
