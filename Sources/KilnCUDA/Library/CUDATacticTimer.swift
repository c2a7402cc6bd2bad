import KilnIR
import KilnRuntime

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

    /// A device buffer of `count` seeded random floats in [-1, 1) (at least one), copied before returning.
    func randomBuffer(_ context: CUDAContext, count: Int, seed: UInt64) throws -> DeviceBuffer {
        var generator = SeededGenerator(seed: seed)
        let values = (0..<max(count, 1)).map { _ in Float(generator.unit() * 2 - 1) }
        let buffer = try context.allocate(bytes: values.count * 4)
        try values.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            try stream.copy(toDevice: buffer.address, from: base, bytes: bytes.count)
        }
        try stream.synchronize()
        return buffer
    }

    /// The first `count` floats of `buffer`, after the stream's work so far.
    func download(_ buffer: DeviceBuffer, count: Int) throws -> [Float] {
        var values = [Float](repeating: 0, count: max(min(count, buffer.bytes / 4), 1))
        try values.withUnsafeMutableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            try stream.copy(toHost: base, from: buffer.address, bytes: min(bytes.count, buffer.bytes))
        }
        try stream.synchronize()
        return values
    }

    /// ||a - b|| / ||b|| in double precision (infinite when either holds a non-finite difference).
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double { FloatDifference(a, b).relative }

    /// How far a candidate's result may be from the reference algorithm's: FP32 math differs only in the
    /// order of additions; TF32 rounds its inputs.
    static func tolerance(tf32: Bool) -> Double { tf32 ? 1e-3 : 1e-5 }

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
