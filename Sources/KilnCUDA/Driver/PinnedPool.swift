import Foundation
import KilnIR

/// Page-locked host memory handed out as tensor storage and taken back when the storage goes. Copies between
/// the GPU and page-locked memory run at the bus's speed and truly asynchronously, where copies from ordinary
/// (pageable) memory go through the driver's staging buffers at a fraction of it; keeping the blocks spares
/// each run the cost of `cuMemHostAlloc`, which pins pages one by one (milliseconds for tens of megabytes).
/// Blocks come back on whatever thread drops the last tensor, so the pool is locked.
final class PinnedPool: @unchecked Sendable {
    private let context: CUDAContext
    /// Bytes of returned blocks kept for reuse; a block returned beyond it is freed.
    let keepLimit: Int
    private let lock = NSLock()
    private var kept: [Int: [UnsafeMutableRawPointer]] = [:]
    private var keptBytes = 0

    init(context: CUDAContext, keepLimit: Int = 1 << 30) {
        self.context = context
        self.keepLimit = keepLimit
    }

    deinit {
        try? context.makeCurrent()
        for block in kept.values.joined() { _ = context.driver.cuMemFreeHost(block) }
    }

    /// Blocks are sized in 64 KiB steps, so that storage for one shape finds the block of the previous run.
    static func blockSize(_ bytes: Int) -> Int { (max(bytes, 1) + 0xFFFF) & ~0xFFFF }

    /// Storage for `byteCount` bytes in page-locked memory, a kept block when one of the size is free. Its
    /// bytes are whatever the block held: the caller fills them.
    func storage(byteCount: Int) throws -> TensorStorage {
        guard byteCount >= 0 else {
            throw KilnError.invalidArgument("cannot allocate \(byteCount) bytes of pinned memory")
        }
        let size = Self.blockSize(byteCount)
        let block = try take(size) ?? allocate(size)
        return TensorStorage(bytes: block, byteCount: byteCount) { [self] block in give(block, size: size) }
    }

    /// The number of bytes kept for reuse now.
    var keptByteCount: Int { lock.withLock { keptBytes } }

    private func take(_ size: Int) -> UnsafeMutableRawPointer? {
        lock.withLock {
            guard let block = kept[size]?.popLast() else { return nil }
            keptBytes -= size
            return block
        }
    }

    private func allocate(_ size: Int) throws -> UnsafeMutableRawPointer {
        try context.makeCurrent()
        var pointer: UnsafeMutableRawPointer?
        try context.driver.check(
            context.driver.cuMemHostAlloc(&pointer, size, CUDAConstant.hostAllocPortable),
            "cuMemHostAlloc(\(size) bytes)")
        guard let pointer else { throw KilnError.runtime("cuMemHostAlloc returned no memory") }
        return pointer
    }

    private func give(_ block: UnsafeMutableRawPointer, size: Int) {
        let keep = lock.withLock {
            guard keptBytes + size <= keepLimit else { return false }
            kept[size, default: []].append(block)
            keptBytes += size
            return true
        }
        if !keep {
            try? context.makeCurrent()
            _ = context.driver.cuMemFreeHost(block)
        }
    }
}
