import CKilnMicroKernels

/// Single-precision matrix multiply, `C = alpha * A x B (+ C)`, the engine of MatMul, Gemm and Convolution.
///
/// Both operands are packed into panels (`PackedPanels`): A in strips of `mr` rows, B in strips of `nr`
/// columns, blocked by `kc` along the depth so one B strip (kc x nr) stays in L1 and one A tile (mc x kc) in L2.
/// A register-blocked micro-kernel keeps an `mr` x `nr` tile of C in SIMD registers; the tactic
/// (`GemmTactic`) says which one and how deep the blocks are. The portable kernel (6 x 8, written here) is for
/// the baseline x86-64 target (SSE2, 16 registers of 4 floats: 12 accumulators, 2 B vectors, 1 A vector): each
/// thread expands the A tile it works on so every element fills a register (SSE2 has no broadcast load),
/// about 25% faster than shuffling inside the loop. The AVX2 and AVX-512 kernels are C compiled for their
/// instruction sets (`CKilnMicroKernels`) and run only where the CPU has them. Work is split over tiles of C
/// (mc x nc), which are independent, so threads never share an output element.
enum SGEMM {
    typealias Vector = SIMD8<Float>
    typealias Quad = SIMD4<Float>
    /// Floats each A element occupies in the broadcast scratch tile (one SSE register).
    static let broadcastWidth = 4

    /// Multiplies packed operands into `c` (row-major with row stride `ldc`). `a.extent` rows, `b.extent`
    /// columns, common depth. With `accumulate` the product is added to C, otherwise it replaces C. The
    /// epilogue runs on each tile of C right after its last depth block, while the tile is in cache.
    static func multiply(
        _ a: PackedPanels, _ b: PackedPanels, into c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, accumulate: Bool = false, epilogue: GemmEpilogue = GemmEpilogue(), tactic: GemmTactic,
        threads: Int
    ) {
        precondition(
            a.width == tactic.mr && b.width == tactic.nr && a.blockSize == tactic.kc && b.blockSize == tactic.kc,
            "operands packed for another tactic than \(tactic)")
        let (mr, nr, mc, nc) = (tactic.mr, tactic.nr, tactic.mc, tactic.nc)
        let m = a.extent
        let n = b.extent
        guard m > 0, n > 0 else { return }
        if a.depth == 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            if !epilogue.isEmpty { epilogue.apply(c, ldc: ldc, row: 0, column: 0, rows: m, cols: n) }
            return
        }
        let useThreads = m * n * a.depth < 64 * 64 * 64 ? 1 : threads
        // Tiles of equal size: the rows (columns) a tile size would leave over are spread over all tiles, so
        // that no thread gets a full tile where another gets a sliver (m = 128 in tiles of 96 would be 96 + 32).
        func even(_ extent: Int, _ size: Int, _ step: Int) -> Int {
            let tiles = (extent + size - 1) / size
            return max(step, ((extent + tiles - 1) / tiles + step - 1) / step * step)
        }
        var rowsPerTile = even(m, mc, mr)
        var columnsPerTile = even(n, nc, nr)
        // Enough tasks to balance the threads: shrink the tiles along the long side when the defaults give few.
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
        let shared = UncheckedSendable((a, b, c, epilogue))
        Parallel.forEach(mTiles * nTiles, threads: useThreads) { range in
            let (a, b, c, epilogue) = shared.value
            // The portable kernel: one scratch tile of broadcast A per thread, reused for every tile it computes.
            let panels = tactic.kernel.tile == nil ? min(rowsPerTile / mr, a.panelCount) : 0
            let bytes = max(panels * a.blockSize * mr * broadcastWidth, 1) * MemoryLayout<Float>.stride
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { raw.deallocate() }
            let scratch = raw.bindMemory(to: Float.self, capacity: bytes / MemoryLayout<Float>.stride)
            for t in range {
                let rows = (t / nTiles * rowsPerTile / mr)..<min((t / nTiles + 1) * rowsPerTile / mr, a.panelCount)
                let columns =
                    (t % nTiles * columnsPerTile / nr)..<min((t % nTiles + 1) * columnsPerTile / nr, b.panelCount)
                if let kernel = tactic.kernel.tile {
                    tile(
                        a, b, c, ldc: ldc, rowPanels: rows, columnPanels: columns, kernel: kernel, alpha: alpha,
                        accumulate: accumulate, epilogue: epilogue)
                } else {
                    tile(
                        a, b, c, ldc: ldc, rowPanels: rows, columnPanels: columns, scratch: scratch, alpha: alpha,
                        accumulate: accumulate, epilogue: epilogue)
                }
            }
        }
    }

    /// Packs and multiplies: `C[m x n] = alpha * A[m x k] x B[k x n] (+ C)` for strided views A and B.
    static func gemm(
        m: Int, n: Int, k: Int, a: FloatMatrix, b: FloatMatrix, c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, accumulate: Bool = false, epilogue: GemmEpilogue = GemmEpilogue(),
        tactic: GemmTactic = .heuristic, threads: Int
    ) {
        let pa = PackedPanels.pack(a, extent: m, depth: k, width: tactic.mr, blockSize: tactic.kc, threads: threads)
        let pb = PackedPanels.pack(
            transposedView(b), extent: n, depth: k, width: tactic.nr, blockSize: tactic.kc, threads: threads)
        multiply(
            pa, pb, into: c, ldc: ldc, alpha: alpha, accumulate: accumulate, epilogue: epilogue, tactic: tactic,
            threads: threads)
    }

    /// B as the packer reads it: element (column, depth).
    static func transposedView(_ b: FloatMatrix) -> FloatMatrix {
        FloatMatrix(base: b.base, rowStride: b.columnStride, columnStride: b.rowStride)
    }

    /// Runs a C micro-kernel over the tile's panels, depth block by depth block.
    private static func tile(
        _ a: PackedPanels, _ b: PackedPanels, _ c: UnsafeMutablePointer<Float>, ldc: Int,
        rowPanels: Range<Int>, columnPanels: Range<Int>, kernel: kiln_sgemm_tile, alpha: Float,
        accumulate: Bool, epilogue: GemmEpilogue
    ) {
        let finishing = !epilogue.isEmpty
        for p in 0..<a.blockCount {
            let add = accumulate || p > 0
            let last = finishing && p == a.blockCount - 1
            for j in columnPanels {
                let col = j * b.width
                column(
                    kernel, a, block: p, rowPanels: rowPanels, UnsafePointer(b.panel(p, j)), c, ldc: ldc,
                    column: col, columns: min(b.width, b.extent - col), alpha: alpha, accumulate: add,
                    epilogue: last ? epilogue : nil)
            }
        }
    }

    /// A C micro-kernel down one column panel of B (`bp`, depth block `p`): one tile of C per row panel, the
    /// epilogue (the last depth block's) applied as each tile is finished: bias, residual and ReLU/clip in
    /// registers, another activation after, on the stored tile.
    static func column(
        _ kernel: kiln_sgemm_tile, _ a: PackedPanels, block p: Int, rowPanels: Range<Int>, _ bp: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, ldc: Int, column col: Int, columns cols: Int, alpha: Float,
        accumulate: Bool, epilogue: GemmEpilogue?
    ) {
        let (depth, mr) = (a.blockDepth(p), a.width)
        for i in rowPanels {
            let row = i * mr
            let rows = min(mr, a.extent - row)
            let out = c + row * ldc + col
            guard let epilogue else {
                kernel(depth, a.panel(p, i), bp, out, ldc, rows, cols, alpha, accumulate ? 1 : 0, nil)
                continue
            }
            var finish = epilogue.tileEpilogue(row: row, column: col)
            kernel(depth, a.panel(p, i), bp, out, ldc, rows, cols, alpha, accumulate ? 1 : 0, &finish)
            if let activation = epilogue.activationAfterTile {
                for r in 0..<rows { GemmEpilogue.activate(out + r * ldc, count: cols, activation) }
            }
        }
    }

    /// The portable kernel over the tile's panels: A expanded into `scratch`, then 6 x 8 tiles.
    private static func tile(
        _ a: PackedPanels, _ b: PackedPanels, _ c: UnsafeMutablePointer<Float>, ldc: Int,
        rowPanels: Range<Int>, columnPanels: Range<Int>, scratch: UnsafeMutablePointer<Float>, alpha: Float,
        accumulate: Bool, epilogue: GemmEpilogue
    ) {
        let (mr, nr) = (portableRows, portableColumns)
        let step = mr * broadcastWidth
        let finishing = !epilogue.isEmpty
        for p in 0..<a.blockCount {
            let depth = a.blockDepth(p)
            let add = accumulate || p > 0
            let last = finishing && p == a.blockCount - 1
            // Expand this depth block of the A tile so each element fills a whole SSE register: the micro-kernel
            // then loads instead of shuffling, which leaves the FP pipes to the multiplies and adds.
            for (n, i) in rowPanels.enumerated() {
                let src = UnsafePointer(a.panel(p, i))
                let dst = UnsafeMutableRawPointer(scratch + n * depth * step)
                for e in 0..<(depth * mr) {
                    dst.storeBytes(of: Quad(repeating: src[e]), toByteOffset: e * 16, as: Quad.self)
                }
            }
            for j in columnPanels {
                let bp = UnsafePointer(b.panel(p, j))
                let col = j * nr
                let cols = min(nr, b.extent - col)
                for (n, i) in rowPanels.enumerated() {
                    let row = i * mr
                    let rows = min(mr, a.extent - row)
                    microKernel(
                        depth, UnsafePointer(scratch + n * depth * step), bp, c + row * ldc + col, ldc: ldc,
                        rows: rows, cols: cols, alpha: alpha, accumulate: add)
                    if last {
                        epilogue.apply(c + row * ldc + col, ldc: ldc, row: row, column: col, rows: rows, cols: cols)
                    }
                }
            }
        }
    }

    static let portableRows = 6
    static let portableColumns = 8

    /// One 6 x 8 tile of C over `depth` steps of broadcast A (6 x 4 floats a step) and packed B (8 floats a step).
    @inline(never)
    private static func microKernel(
        _ depth: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        ldc: Int, rows: Int, cols: Int, alpha: Float, accumulate: Bool
    ) {
        var c0l = Quad()
        var c0h = Quad()
        var c1l = Quad()
        var c1h = Quad()
        var c2l = Quad()
        var c2h = Quad()
        var c3l = Quad()
        var c3h = Quad()
        var c4l = Quad()
        var c4h = Quad()
        var c5l = Quad()
        var c5h = Quad()
        var ap = UnsafeRawPointer(a)
        var bp = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let bl = bp.loadUnaligned(as: Quad.self)
            let bh = bp.loadUnaligned(fromByteOffset: 16, as: Quad.self)
            var x = ap.loadUnaligned(as: Quad.self)
            c0l += x * bl
            c0h += x * bh
            x = ap.loadUnaligned(fromByteOffset: 16, as: Quad.self)
            c1l += x * bl
            c1h += x * bh
            x = ap.loadUnaligned(fromByteOffset: 32, as: Quad.self)
            c2l += x * bl
            c2h += x * bh
            x = ap.loadUnaligned(fromByteOffset: 48, as: Quad.self)
            c3l += x * bl
            c3h += x * bh
            x = ap.loadUnaligned(fromByteOffset: 64, as: Quad.self)
            c4l += x * bl
            c4h += x * bh
            x = ap.loadUnaligned(fromByteOffset: 80, as: Quad.self)
            c5l += x * bl
            c5h += x * bh
            ap += 96
            bp += 32
        }
        var c0 = Vector(lowHalf: c0l, highHalf: c0h)
        var c1 = Vector(lowHalf: c1l, highHalf: c1h)
        var c2 = Vector(lowHalf: c2l, highHalf: c2h)
        var c3 = Vector(lowHalf: c3l, highHalf: c3h)
        var c4 = Vector(lowHalf: c4l, highHalf: c4h)
        var c5 = Vector(lowHalf: c5l, highHalf: c5h)
        if alpha != 1 {
            let s = Vector(repeating: alpha)
            c0 *= s
            c1 *= s
            c2 *= s
            c3 *= s
            c4 *= s
            c5 *= s
        }
        if rows == portableRows && cols == portableColumns {
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
                    let v = t[r * portableColumns + j]
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
