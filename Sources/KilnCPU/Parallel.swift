import Dispatch

/// Splits `0..<count` into contiguous chunks and runs them on up to `threads` threads. Chunks are large enough
/// that small problems stay on the calling thread.
public enum Parallel {
    public static func forEach(
        _ count: Int, threads: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void
    ) {
        guard count > 0 else { return }
        let chunks = min(threads, max(1, count / max(minimumChunk, 1)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            // Each chunk touches disjoint output ranges; the caller guarantees that, so sharing is sound.
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                if start < end { shared.value(start..<end) }
            }
        }
    }
}

/// Carries a value into concurrent closures where the caller has ensured the access is race-free.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
