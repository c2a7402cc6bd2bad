import KilnIR

/// Times library calls the way tactic selection needs: on its own stream, one warm-up call, then the median of
/// `runs` calls, each after writing over a buffer larger than any GPU's L2 cache, so that an algorithm is not
/// flattered by operands its previous run left in the cache (in a model, weights come from device memory and
/// each layer's operands differ).
struct CUDATacticTimer {
    /// Bytes written before each call: twice the largest L2 of current GPUs (H100/H200: 50-60 MiB).
    static let flushBytes = 128 << 20
    /// How much faster than the current choice another algorithm must be to replace it: differences within
    /// timing noise should not move the heuristics' choice.
    static let margin = 0.03

    let stream: CUDAStream
    private let flush: DeviceBuffer
    private let start: CUDAEvent
    private let end: CUDAEvent

    init(context: CUDAContext) throws {
        stream = try context.makeStream()
        flush = try context.allocate(bytes: Self.flushBytes)
        start = try context.makeEvent()
        end = try context.makeEvent()
    }

    /// The median milliseconds of `call` (which enqueues on `stream`) over `runs` timed runs.
    func median(runs: Int, _ call: () throws -> Void) throws -> Double {
        var times: [Double] = []
        for run in 0...max(runs, 1) {
            try stream.fill(device: flush.address, byte: 0, bytes: flush.bytes)
            try stream.record(start)
            try call()
            try stream.record(end)
            try end.synchronize()
            if run > 0 { times.append(try end.milliseconds(since: start)) }
        }
        return times.sorted()[times.count / 2]
    }
}
