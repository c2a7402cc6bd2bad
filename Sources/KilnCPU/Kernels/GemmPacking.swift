import Foundation
import KilnIR

/// A read-only float matrix view: element (i, j) is at `base[i * rowStride + j * columnStride]`, so transposes
/// and slices need no copy.
struct FloatMatrix {
    let base: UnsafePointer<Float>
    let rowStride: Int
    let columnStride: Int

    @inline(__always) subscript(i: Int, j: Int) -> Float { base[i * rowStride + j * columnStride] }
}

/// A matrix copied into the layout the SGEMM micro-kernel streams: for each block of `blockSize` depth (the
/// tactic's `kc`), panels of `width` rows (left operand, the tactic's `mr`) or columns (right operand, `nr`),
/// each panel depth-major so one depth step is `width` consecutive floats. Padding rows/columns are zero.
/// Immutable once filled.
final class PackedPanels: @unchecked Sendable {
    /// Rows of A or columns of B (the non-depth extent), before padding.
    let extent: Int
    let depth: Int
    let width: Int
    /// Depth of one block (the last may be shorter).
    let blockSize: Int
    let paddedExtent: Int
    let data: UnsafeMutablePointer<Float>

    /// Allocates the panels, zero-filled unless the caller writes every element itself (`zeroed: false`).
    init(extent: Int, depth: Int, width: Int, blockSize: Int, zeroed: Bool = true) {
        self.extent = extent
        self.depth = depth
        self.width = width
        self.blockSize = blockSize
        paddedExtent = (extent + width - 1) / width * width
        let count = max(paddedExtent * depth, 1)
        data = UnsafeMutablePointer<Float>.allocate(capacity: count)
        // Float is trivial, so uninitialized memory may be written later without initialize.
        if zeroed || count == 1 { data.initialize(repeating: 0, count: count) }
    }

    deinit { data.deallocate() }

    var panelCount: Int { paddedExtent / width }
    var blockCount: Int { (depth + blockSize - 1) / blockSize }

    /// Depth of block `p` (the last may be short).
    @inline(__always) func blockDepth(_ p: Int) -> Int { min(blockSize, depth - p * blockSize) }

    /// Start of panel `i` in depth block `p`.
    @inline(__always) func panel(_ p: Int, _ i: Int) -> UnsafeMutablePointer<Float> {
        data + p * blockSize * paddedExtent + i * blockDepth(p) * width
    }

    /// Where depth `k` of panel `i` starts.
    @inline(__always) func step(_ k: Int, panel i: Int) -> UnsafeMutablePointer<Float> {
        let p = k / blockSize
        return panel(p, i) + (k - p * blockSize) * width
    }

    /// Packs `source`, whose element (e, d) is row/column `e` of the extent at depth `d`. Parallel over panels.
    static func pack(
        _ source: FloatMatrix, extent: Int, depth: Int, width: Int, blockSize: Int, threads: Int
    ) -> PackedPanels {
        let packed = PackedPanels(extent: extent, depth: depth, width: width, blockSize: blockSize, zeroed: false)
        let shared = UncheckedSendable(packed)
        Parallel.forEach(packed.panelCount, threads: threads, minimumChunk: max(1, 4096 / max(depth * width, 1))) {
            range in
            shared.value.fill(from: source, panels: range)
        }
        return packed
    }

    private func fill(from source: FloatMatrix, panels: Range<Int>) {
        for p in 0..<blockCount {
            let d0 = p * blockSize
            let dn = blockDepth(p)
            for i in panels {
                let dst = panel(p, i)
                let e0 = i * width
                let valid = min(width, extent - e0)
                if source.columnStride == 1 && valid == width {
                    // Depth is contiguous in the source: read each row/column once, scatter into the panel.
                    for e in 0..<width {
                        let src = source.base + (e0 + e) * source.rowStride + d0
                        for d in 0..<dn { dst[d * width + e] = src[d] }
                    }
                } else if source.rowStride == 1 && valid == width {
                    // The extent is contiguous: copy `width` floats per depth step.
                    for d in 0..<dn {
                        let src = source.base + e0 + (d0 + d) * source.columnStride
                        (dst + d * width).update(from: src, count: width)
                    }
                } else {
                    // A partial panel: its padding rows/columns must read as zero.
                    dst.update(repeating: 0, count: dn * width)
                    for d in 0..<dn {
                        for e in 0..<valid { dst[d * width + e] = source[e0 + e, d0 + d] }
                    }
                }
            }
        }
    }
}

/// Remembers a form derived from one weight tensor (packed panels, widened integers) so that a kernel derives
/// it from constant weights once. Keyed by the storage object, which the cache retains so that its identity
/// cannot be reused by another tensor, and by the form's layout (a packed tactic's panel width and depth block).
final class WeightCache<Derived>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: TensorStorage?
    private var shape: [Int] = []
    private var layout: [Int] = []
    private var derived: Derived?

    /// The cached form of `tensor` in `layout`, or the result of `make` (which is then cached).
    func value(for tensor: Tensor, layout: [Int] = [], _ make: () throws -> Derived) rethrows -> Derived {
        lock.lock()
        if let storage, storage === tensor.storage, shape == tensor.shape, self.layout == layout, let hit = derived {
            lock.unlock()
            return hit
        }
        lock.unlock()
        let fresh = try make()
        lock.lock()
        storage = tensor.storage
        shape = tensor.shape
        self.layout = layout
        derived = fresh
        lock.unlock()
        return fresh
    }
}

typealias PackedWeightCache = WeightCache<[PackedPanels]>
