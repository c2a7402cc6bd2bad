/// Places buffers in one arena so that buffers alive at the same time never overlap: liveness intervals over
/// the execution order, then best-fit offsets, largest buffers first.
public enum MemoryPlanner {
    /// One buffer to place: `bytes` long, alive from step `first` through step `last` (inclusive).
    public struct Request: Sendable, Hashable {
        public var bytes: Int
        public var first: Int
        public var last: Int

        public init(bytes: Int, first: Int, last: Int) {
            self.bytes = bytes
            self.first = first
            self.last = last
        }

        /// Whether the two buffers are alive at a common step.
        public func overlapsLifetime(_ other: Request) -> Bool { first <= other.last && other.first <= last }
    }

    /// The placement: an offset per request (in request order) and the arena size.
    public struct Plan: Sendable, Hashable {
        public var offsets: [Int]
        public var arenaBytes: Int
        /// What one buffer per request would take, for reports.
        public var naiveBytes: Int
    }

    /// The alignment of every offset unless a caller asks for another.
    public static let defaultAlignment = 256

    /// Offsets are multiples of `alignment` (a power of two).
    public static func plan(_ requests: [Request], alignment: Int = defaultAlignment) -> Plan {
        func aligned(_ n: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }
        let order = requests.indices.sorted {
            requests[$0].bytes != requests[$1].bytes ? requests[$0].bytes > requests[$1].bytes : $0 < $1
        }
        var offsets = [Int](repeating: 0, count: requests.count)
        var placed: [Int] = []
        var arena = 0
        for index in order {
            let request = requests[index]
            let size = aligned(max(request.bytes, 1))
            // Busy ranges of buffers alive at the same time, by offset; pick the tightest gap that fits.
            let busy = placed.filter { requests[$0].overlapsLifetime(request) }
                .map { (offsets[$0], offsets[$0] + aligned(max(requests[$0].bytes, 1))) }
                .sorted { $0.0 < $1.0 }
            var best: (offset: Int, gap: Int)?
            var cursor = 0
            for (start, end) in busy {
                if start - cursor >= size, start - cursor < (best?.gap ?? Int.max) {
                    best = (cursor, start - cursor)
                }
                cursor = max(cursor, end)
            }
            let offset = best?.offset ?? cursor
            offsets[index] = offset
            placed.append(index)
            arena = max(arena, offset + size)
        }
        let naive = requests.reduce(0) { $0 + aligned(max($1.bytes, 1)) }
        return Plan(offsets: offsets, arenaBytes: arena, naiveBytes: naive)
    }
}
