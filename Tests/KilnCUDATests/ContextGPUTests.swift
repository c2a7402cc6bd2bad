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
        let graph = try tinyCNN()
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

/// Transfers through page-locked memory: outputs land in blocks of the device's pool and go back to it with the
/// tensors; inputs copied by `Engine.pinnedCopy(of:)` give the outputs ordinary memory gives.
@Suite(.enabled(if: gpuUsable)) struct PinnedTransferGPUTests {
    @Test func poolKeepsBlocksUpToItsLimit() throws {
        let pool = PinnedPool(context: try CUDAContext.open(), keepLimit: 1 << 20)
        #expect(PinnedPool.blockSize(1) == 1 << 16 && PinnedPool.blockSize(1 << 16) == 1 << 16)
        let first = try pool.storage(byteCount: 1000).bytes
        #expect(pool.keptByteCount == 1 << 16)
        let again = try pool.storage(byteCount: 5000)
        #expect(again.bytes == first && pool.keptByteCount == 0)
        again.bytes.storeBytes(of: 7, as: Int32.self)
        #expect(again.bytes.load(as: Int32.self) == 7)
        _ = try pool.storage(byteCount: 2 << 20)
        #expect(pool.keptByteCount == 0, "a block over the limit is freed, not kept")
    }

    @Test func pinnedInputsAndOutputs() throws {
        let graph = try tinyCNN()
        let engine = try Builder.build(graph, device: try CUDADevice())
        let (input, output) = (engine.inputs[0].name, engine.outputs[0].name)
        var generator = SeededGenerator(seed: 5)
        let feeds: [String: Value] = [input: .tensor(Tensor.random([8, 3, 32, 32], using: &generator))]
        let pinned = try feeds.mapValues { try engine.pinnedCopy(of: $0) }
        let (plain, copy) = (try feeds[input]!.asTensor(), try pinned[input]!.asTensor())
        #expect(plain.storage !== copy.storage && plain.shape == copy.shape)
        #expect(memcmp(plain.storage.bytes, copy.storage.bytes, plain.byteCount) == 0)

        let context = engine.makeContext()
        let want = try context.run(feeds)
        #expect(Comparison.differingOutputs(want, try context.run(pinned), names: [output]) == [])
        // A dropped output's block serves the next run's output.
        let dropped = try context.run(pinned)[output]!.asTensor().storage.bytes
        let next = try context.run(pinned)
        #expect(try next[output]!.asTensor().storage.bytes == dropped)
        #expect(Comparison.differingOutputs(want, next, names: [output]) == [])
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
