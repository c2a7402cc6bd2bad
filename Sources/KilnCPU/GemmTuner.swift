import Dispatch
import Foundation
import KilnIR
import KilnRuntime

/// How the CPU backend chooses its tactics.
public struct CPUOptions: Sendable {
    /// 0 times nothing (every product takes the likely fastest micro-kernel); 1-5 time up to 2, 4, 8, 16, 32
    /// candidates per layer signature, as on the GPU.
    public var level: Int
    /// After this moment (the build budget) nothing more is timed; known choices still apply.
    public var tuningDeadline: Date?
    /// Products of fewer multiply-adds take the untimed choice: timing them costs more than it can save.
    public var minimumTunedWork: Int

    public init(level: Int = BuildOptions.defaultLevel, tuningDeadline: Date? = nil, minimumTunedWork: Int = 1 << 22) {
        self.level = level
        self.tuningDeadline = tuningDeadline
        self.minimumTunedWork = minimumTunedWork
    }

    /// No timing: for devices that run a graph once (references, constant folding, conformance cases).
    public static let untuned = CPUOptions(level: 0)
}

/// The GEMM tactic of each layer signature (a convolution or product with its shapes): one chosen earlier
/// (this build's, a plan's, a timing cache's), or chosen now by running the layer with every candidate.
/// Each candidate's output must match the portable kernel's (relative error at most 1e-4) or it is rejected;
/// those that match are timed in three interleaved rounds and the fastest median is kept.
/// Shared by the kernels of one device; timing holds a lock so that two layers never time at once.
final class GemmTuner: @unchecked Sendable {
    let options: CPUOptions
    private let lock = NSLock()
    private var chosen: [String: String] = [:]
    private var rejected: [String] = []
    private var timed = 0

    init(options: CPUOptions) { self.options = options }

    var tactics: [String: String] { lock.withLock { chosen } }
    /// Candidates that did not match the reference, as "signature: tactic (error)".
    var rejections: [String] { lock.withLock { rejected } }
    /// Candidates run to be checked and timed so far.
    var timedCandidates: Int { lock.withLock { timed } }

    func preload(_ tactics: [String: String]) {
        lock.withLock { chosen.merge(tactics.filter { $0.key.hasPrefix("cpu.") }) { _, new in new } }
    }

    /// The tactic for `signature`. `work` is the layer's multiply-adds; `run` computes the layer's output with a
    /// tactic (it must not have side effects: it runs once per timing).
    func tactic(signature: String, work: Int, _ run: (GemmTactic) throws -> Tensor) throws -> GemmTactic {
        if let known = lock.withLock({ chosen[signature] }) {
            // A tactic this CPU lacks (a plan built elsewhere) takes the untimed choice.
            return GemmTactic(named: known) ?? .heuristic
        }
        let count = options.level == 0 ? 1 : 1 << min(options.level, 5)
        let candidates = Array(GemmTactic.candidates.prefix(count))
        guard candidates.count > 1, work >= options.minimumTunedWork,
            options.tuningDeadline.map({ Date() < $0 }) ?? true
        else { return .heuristic }
        lock.lock()
        defer { lock.unlock() }
        if let known = chosen[signature] { return GemmTactic(named: known) ?? .heuristic }
        let reference = try run(.portable).scalars(as: Float.self)
        // Each candidate's first run is its check against the reference (and its warm-up).
        var passing: [GemmTactic] = []
        for candidate in candidates {
            timed += 1
            let difference = FloatDifference(try run(candidate).scalars(as: Float.self), reference)
            guard difference.relative <= 1e-4 else {
                rejected.append("\(signature): \(candidate) (relative error \(difference.relative))")
                continue
            }
            passing.append(candidate)
        }
        // Then three rounds over all of them, so that a burst of load on a shared machine hits every candidate
        // alike rather than one; each keeps its median.
        var times = [[Double]](repeating: [], count: passing.count)
        for _ in 0..<3 {
            for (index, candidate) in passing.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try run(candidate)
                times[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        let medians = times.map { $0.sorted()[1] }
        let fastest = medians.indices.min { medians[$0] < medians[$1] }
        let tactic = fastest.map { passing[$0] } ?? .portable
        chosen[signature] = tactic.description
        return tactic
    }
}

/// What a CPU kernel factory receives: the compiler for the layer's subgraphs and the device's tuner.
public struct CPUKernelEnvironment: SubgraphCompiler {
    let subgraphs: any SubgraphCompiler
    let tuner: GemmTuner

    public func compile(_ graph: Graph) throws -> CompiledGraph { try subgraphs.compile(graph) }
}
