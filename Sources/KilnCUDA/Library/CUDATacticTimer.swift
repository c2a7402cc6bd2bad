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

    /// A device buffer of `count` seeded random values in [-1, 1) (at least one) stored as `dtype` (float32,
    /// float16 or bfloat16), copied before returning.
    func randomBuffer(
        _ context: CUDAContext, count: Int, seed: UInt64, dtype: DType = .float32
    ) throws -> DeviceBuffer {
        try upload(context, try Self.randomValues(count: count, seed: seed, dtype: dtype), dtype: dtype)
    }

    /// The values `randomBuffer` stores, as floats (rounded to `dtype` first).
    static func randomValues(count: Int, seed: UInt64, dtype: DType = .float32) throws -> [Float] {
        var generator = SeededGenerator(seed: seed)
        let values = (0..<max(count, 1)).map { _ in Float(generator.unit() * 2 - 1) }
        guard dtype != .float32 else { return values }
        let rounded = try Tensor(shape: [values.count], scalars: values).cast(to: dtype).cast(to: .float32)
        return rounded.withUnsafeBuffer(as: Float.self) { Array($0) }
    }

    /// A device buffer holding `values` stored as `dtype`, copied before returning.
    func upload(_ context: CUDAContext, _ values: [Float], dtype: DType = .float32) throws -> DeviceBuffer {
        let tensor = try Tensor(shape: [values.count], scalars: values).cast(to: dtype)
        let buffer = try context.allocate(bytes: tensor.byteCount)
        try withExtendedLifetime(tensor) {
            try stream.copy(
                toDevice: buffer.address, from: UnsafeRawPointer(tensor.storage.bytes), bytes: tensor.byteCount)
            try stream.synchronize()
        }
        return buffer
    }

    /// The first `count` values of `buffer` (stored as `dtype`) as floats, after the stream's work so far.
    func download(_ buffer: DeviceBuffer, count: Int, dtype: DType = .float32) throws -> [Float] {
        let size = dtype.byteSize
        var bytes = [UInt8](repeating: 0, count: max(min(count, buffer.bytes / size), 1) * size)
        try bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            try stream.copy(toHost: base, from: buffer.address, bytes: min(raw.count, buffer.bytes))
        }
        try stream.synchronize()
        let tensor = try bytes.withUnsafeBytes { raw in
            try Tensor(dtype: dtype, shape: [bytes.count / size], rawBytes: raw).cast(to: .float32)
        }
        return tensor.withUnsafeBuffer(as: Float.self) { Array($0) }
    }

    /// ||a - b|| / ||b|| in double precision (infinite when either holds a non-finite difference).
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double { FloatDifference(a, b).relative }

    /// How far a candidate's result may be from the reference algorithm's: FP32 math differs only in the
    /// order of additions; TF32 rounds its inputs.
    static func tolerance(tf32: Bool) -> Double { tf32 ? 1e-3 : 1e-5 }

    /// The same for results stored as `dtype`: a 16-bit float output is rounded to 11 (float16) or 8
    /// (bfloat16) significant bits, so algorithms that add in another order differ in the last of them.
    static func tolerance(dtype: DType, tf32: Bool) -> Double {
        switch dtype {
        case .float16: 2e-3
        case .bfloat16: 1.5e-2
        default: tolerance(tf32: tf32)
        }
    }

    /// A call of Kiln's kernel `launch` on this timer's stream, its operands given by `addresses` (the timing
    /// buffers by the operand names the timed step uses), or nil when the kernel does not load.
    func call(
        _ launch: CUDALaunch, load: (CUDALaunch) throws -> CUDAFunction, addresses: [CUDAOperand: UInt64]
    ) -> (() throws -> Void)? {
        guard let function = try? load(launch),
            let prepared = try? launch.prepare(function, resolve: { addresses[$0] ?? 0 })
        else { return nil }
        return { try prepared.enqueue(on: self.stream) }
    }

    /// The contest among one layer's `tactics`: each that `prepare` gives a call for (nil: not a candidate) runs,
    /// timed as the median of `runs`; its result (`output`) must match the host's samples (`matchesHost`, or
    /// it counts as rejected) and the result of the first tactic that ran within `tolerance`; another replaces
    /// that first one only when faster by `margin`. Returns the fastest (nil when none qualified).
    func fastest(
        _ tactics: [Int], runs: Int, prepare: (Int) throws -> (() throws -> Void)?, output: () throws -> [Float],
        matchesHost: ([Float]) -> Bool, tolerance: Double
    ) throws -> (best: Int?, milliseconds: Double?, launched: Int, rejected: Int) {
        var reference: [Float] = []
        var (launched, rejected) = (0, 0)
        var best: (tactic: Int, milliseconds: Double)?
        for tactic in tactics {
            guard let call = try prepare(tactic), let median = try? self.median(runs: runs, call) else {
                continue  // one that does not load or fails to launch is not a candidate
            }
            launched += 1
            let result = try output()
            guard matchesHost(result) else {
                rejected += 1
                continue
            }
            if reference.isEmpty {
                reference = result
            } else if Self.relativeError(result, reference) > tolerance {
                continue  // faster is no use if the result differs
            }
            if best.map({ median < $0.milliseconds * (1 - Self.margin) }) ?? true { best = (tactic, median) }
        }
        return (best?.tactic, best?.milliseconds, launched, rejected)
    }

    /// The median milliseconds of copying `bytes` from one device buffer to another.
    func copyMilliseconds(_ context: CUDAContext, bytes: Int, runs: Int = 5) throws -> Double {
        let (from, to) = (try context.allocate(bytes: bytes), try context.allocate(bytes: bytes))
        return try median(runs: runs) { try stream.copy(device: to.address, from: from.address, bytes: bytes) }
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

/// What a runner's `tune` did: the candidate chosen (rank or index), how many candidates ran (0 when nothing
/// was timed), and how many of those missed the host reference.
public struct TacticOutcome: Sendable, Equatable {
    public var rank: Int
    public var launched: Int
    public var rejected: Int
}
