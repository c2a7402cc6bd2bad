import Dispatch
import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Execution contexts of one CUDA engine own their memory and stream: run at once from several threads, each
/// gives the outputs that one context gives alone.
@Suite(.enabled(if: gpuUsable)) struct ContextGPUTests {
    @Test func concurrentContextsMatchOneContext() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let graph = try ONNXImporter.load(contentsOf: root.appendingPathComponent("models/tinycnn/model.onnx")).graph
        let engine = try Builder.build(graph, device: try CUDADevice(options: .init(useCUDAGraphs: true)))
        let name = engine.inputs[0].name
        var generator = SeededGenerator(seed: 11)
        let feeds: [[String: Value]] = (0..<4).map { _ in
            [name: .tensor(Tensor.random([8, 3, 32, 32], using: &generator))]
        }
        let single = engine.makeContext()
        let want = try feeds.map { try single.run($0) }

        let contexts = (0..<4).map { _ in engine.makeContext() }
        let results = Results(count: contexts.count)
        let shared = UncheckedContexts(contexts: contexts)
        DispatchQueue.concurrentPerform(iterations: contexts.count) { index in
            // Several runs each, so the CUDA graph replays overlap too.
            for _ in 0..<5 {
                results.set(index, Result { try shared.contexts[index].run(feeds[index]) })
            }
        }
        for index in contexts.indices {
            #expect(
                Comparison.differingOutputs(want[index], try results.get(index), names: engine.outputs.map(\.name))
                    == [])
        }
    }
}

private struct UncheckedContexts: @unchecked Sendable {
    let contexts: [ExecutionContext]
}

private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[String: Value], any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Result<[String: Value], any Error>) { lock.withLock { slots[index] = value } }

    func get(_ index: Int) throws -> [String: Value] {
        guard let slot = lock.withLock({ slots[index] }) else { throw KilnError.runtime("no result \(index)") }
        return try slot.get()
    }
}
