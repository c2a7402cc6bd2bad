import CKilnMicroKernels

extension SGEMM {
    /// `C = A × B (+ epilogue)` where B is never whole in memory: each thread makes the panels of one depth block
    /// of its columns just before multiplying them (`packB(block, panels, into)` writes panels `panels` of depth
    /// block `block` one after another into the buffer), so a B much larger than the caches (a convolution's
    /// im2col) is written and read while it is in L2 instead of going out to memory and back. For an A of one
    /// row tile (`a.extent` at most the tactic's `mc`, where B would be made once anyway) and a C micro-kernel;
    /// work is split over the columns.
    static func multiply(
        _ a: PackedPanels, columns n: Int,
        packB: (_ block: Int, _ panels: Range<Int>, _ into: UnsafeMutablePointer<Float>) -> Void,
        into c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GemmEpilogue, tactic: GemmTactic, threads: Int
    ) {
        precondition(
            a.width == tactic.mr && a.blockSize == tactic.kc && a.extent <= tactic.mc && tactic.kernel.tile != nil,
            "streamed-B product needs one row tile and a C micro-kernel, not \(tactic) over \(a.extent) rows")
        guard let kernel = tactic.kernel.tile, a.extent > 0, n > 0, a.depth > 0 else { return }
        let nr = tactic.nr
        let panels = (n + nr - 1) / nr
        let useThreads = a.extent * n * a.depth < 64 * 64 * 64 ? 1 : threads
        // Column tiles of at most `nc`, and enough of them to balance the threads.
        let tiles = max((n + tactic.nc - 1) / tactic.nc, useThreads > 1 ? 3 * useThreads : 1)
        let panelsPerTile = max(1, (panels + tiles - 1) / tiles)
        let tileCount = (panels + panelsPerTile - 1) / panelsPerTile
        let shared = UncheckedSendable((a, c, epilogue))
        let finishing = !epilogue.isEmpty
        Parallel.forEach(tileCount, threads: useThreads) { range in
            let (a, c, epilogue) = shared.value
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: a.blockSize * panelsPerTile * nr)
            defer { buffer.deallocate() }
            for t in range {
                let columnPanels = (t * panelsPerTile)..<min((t + 1) * panelsPerTile, panels)
                for p in 0..<a.blockCount {
                    let depth = a.blockDepth(p)
                    packB(p, columnPanels, buffer)
                    let last = finishing && p == a.blockCount - 1
                    for (q, j) in columnPanels.enumerated() {
                        let col = j * nr
                        column(
                            kernel, a, block: p, rowPanels: 0..<a.panelCount, UnsafePointer(buffer + q * depth * nr),
                            c, ldc: ldc, column: col, columns: min(nr, n - col), alpha: 1, accumulate: p > 0,
                            epilogue: last ? epilogue : nil)
                    }
                }
            }
        }
    }
}
