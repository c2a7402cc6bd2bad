import Foundation
import KilnIR
import Testing

@testable import KilnCUDA

/// Compiles every data-movement kernel variant the lowerings can emit with NVRTC for sm_90 (no GPU needed).
/// Without NVRTC the test records a known issue saying so instead of passing silently.
@Suite struct ShapeNVRTCTests {
    /// Every source the shape lowerings can produce.
    static var allSources: [CUDASource] {
        var sources: [CUDASource] = []
        for unit in CUDAShapeKernels.units {
            for rank in 1...CUDAPrelude.maxRank {
                sources.append(CUDAShapeKernels.strided(unit: unit, rank: rank, wide: false))
                sources.append(CUDAShapeKernels.strided(unit: unit, rank: rank, wide: true))
            }
            sources.append(CUDAShapeKernels.concat(unit: unit))
            for index in ["int", "long long"] {
                sources.append(CUDAIndexingLowerings.gatherSource(unit: unit, indexType: index))
            }
        }
        for unit in [1, 2, 4, 8] {
            sources.append(CUDAShapeKernels.fill(unit: unit))
            for batch in 0...(CUDAPrelude.maxRank - 2) {
                sources.append(CUDAShapeKernels.transpose(unit: unit, batchRank: batch))
                for wide in [false, true] {
                    sources.append(CUDAShapeKernels.narrowTranspose(unit: unit, batchRank: batch, wide: wide))
                }
            }
            for rank in 1...CUDAPrelude.maxRank {
                for mode in [PadLayer.Mode.constant, .edge, .wrap, .reflect] {
                    sources.append(CUDAShapeKernels.pad(unit: unit, rank: rank, mode: mode))
                }
                for index in ["int", "long long"] {
                    sources.append(CUDAIndexingLowerings.gatherElementsSource(unit: unit, rank: rank, indexType: index))
                }
            }
        }
        return sources
    }

    @Test func everyVariantCompilesForSM90() throws {
        let sources = Self.allSources
        #expect(Set(sources.map(\.name)).count == sources.count, "kernel names must identify their code")
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): \(sources.count) shape kernels NOT compile-checked") {
                Issue.record("NVRTC missing")
            }
            return
        }
        if let dump = ProcessInfo.processInfo.environment["KILN_DUMP_CUDA"] {
            for s in sources {
                try (CUDAPrelude.text + s.code).write(toFile: "\(dump)/\(s.name).cu", atomically: true, encoding: .utf8)
            }
        }
        // Programs are independent, so compile them on every core (about 300 variants).
        let logs = Logs(count: sources.count)
        DispatchQueue.concurrentPerform(iterations: sources.count) { i in
            do {
                _ = try nvrtc.compile(sources[i], architecture: 90)
            } catch {
                logs.set(i, "\(error)")
            }
        }
        for (source, log) in zip(sources, logs.values) { #expect(log == nil, "\(source.name): \(log ?? "")") }
    }
}

/// Compile logs written from concurrent workers.
final class Logs: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ log: String?) { lock.withLock { storage[i] = log } }
    var values: [String?] { lock.withLock { storage } }
}
