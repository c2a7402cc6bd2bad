import Foundation
import KilnIR

extension CUDAPlanBuilder {
    /// A step with alternative launches that the build times.
    struct TimedChoice {
        var node: Int
        var part: Int
        var choice: CUDALaunchChoice
    }

    /// `nodes` with each step that has alternatives (`CUDALowering.alternatives`) set to the launch a plan or
    /// timing cache knows for its signature or, after the build, to the one the same step chose at
    /// `reference`; the steps left to time (building with timing on, within the build budget) keep the first
    /// launch (the lowering's estimate) until `timingLaunches` runs.
    func knownLaunches(_ nodes: [LoweredNode]) -> (nodes: [LoweredNode], timed: [TimedChoice]) {
        var nodes = nodes
        let kernels = device.options.kernels
        let timing = !afterBuild && kernels.tuneLibraries && (kernels.tuningDeadline.map { Date() < $0 } ?? true)
        let followed = reference?.launchChoices ?? [:]
        var timed: [TimedChoice] = []
        for (index, lowered) in nodes.enumerated() {
            for (part, choice) in lowered.lowering?.alternatives ?? [:] {
                let key = CUDAShapeProgram.PartKey(node: lowered.node.name, part: part)
                let known = device.libraries.kernelChoice(choice.signature) ?? (afterBuild ? followed[key] : nil)
                if let known, choice.launches.indices.contains(known) {
                    nodes[index].lowering?.steps[part] = .launch(choice.launches[known])
                } else if timing {
                    timed.append(TimedChoice(node: index, part: part, choice: choice))
                }
            }
        }
        return (nodes, timed)
    }

    /// `nodes` with each of `timed` set to the fastest of its launches on this shape's memory (their modules
    /// compiled already), the choice remembered by signature.
    func timingLaunches(
        _ timed: [TimedChoice], _ nodes: [LoweredNode], _ memory: CUDAMemoryLayout, _ graph: Graph
    )
        throws -> [LoweredNode]
    {
        guard !timed.isEmpty else { return nodes }
        var nodes = nodes
        let bound = try memory.withArena(on: device)
        let timer = try CUDATacticTimer(context: device.context)
        // 1 MiB of seeded random bytes, repeated over each timed layer's activation inputs.
        var generator = SeededGenerator(seed: 0x6B69_6C6E)
        let random = (0..<(1 << 17)).map { _ in generator.next() }
        for item in timed {
            let best = try withErrorContext("timing the launches of layer \(item.node) '\(nodes[item.node].node.name)'")
            {
                try fastest(item.choice, part: item.part, node: item.node, nodes, bound, graph, timer, random: random)
            }
            device.libraries.remember(kernelChoice: best, for: item.choice.signature)
            nodes[item.node].lowering?.steps[item.part] = .launch(item.choice.launches[best])
        }
        return nodes
    }

    /// The fastest of `choice`'s launches (by `CUDATacticTimer.fastest`: median of 5, 3% margin over the first)
    /// among those that write the same bytes as the first, on the node's activation inputs filled with `block`
    /// (repeated) and run through the node's steps before `part`.
    private func fastest(
        _ choice: CUDALaunchChoice, part: Int, node index: Int, _ nodes: [LoweredNode], _ memory: CUDAMemoryLayout,
        _ graph: Graph, _ timer: CUDATacticTimer, random block: [UInt64]
    ) throws -> Int {
        let node = nodes[index].node
        let resolve = { (operand: CUDAOperand) throws -> UInt64 in try memory.address(of: operand, node: index) }
        func bytes(_ name: String) -> Int {
            guard let type = graph.type(of: name)?.tensorType, let shape = type.concreteShape else { return 0 }
            return Tensor.elementCount(shape) * type.dtype.byteSize
        }
        for (i, name) in node.inputs.enumerated() where !name.isEmpty && graph.initializers[name] == nil {
            let (address, count) = (try resolve(.input(i)), bytes(name))
            try block.withUnsafeBytes { random in
                for start in stride(from: 0, to: count, by: random.count) {
                    try timer.stream.copy(
                        toDevice: address + UInt64(start), from: random.baseAddress!,
                        bytes: min(random.count, count - start))
                }
            }
        }
        for case .launch(let launch) in nodes[index].lowering?.steps.prefix(part) ?? [] {
            try launch.prepare(try device.modules.function(for: launch), resolve: resolve).enqueue(on: timer.stream)
        }
        try timer.stream.synchronize()
        let (output, outputBytes) = (try resolve(.output(0)), bytes(node.outputs[0]))
        let outcome = try timer.fastest(
            Array(choice.launches.indices), runs: 5,
            prepare: { i in
                let launch = choice.launches[i]
                guard let function = try? device.modules.function(for: launch),
                    let prepared = try? launch.prepare(function, resolve: resolve)
                else { return nil }
                return { try prepared.enqueue(on: timer.stream) }
            },
            output: {
                var result = [UInt8](repeating: 0, count: outputBytes)
                try result.withUnsafeMutableBytes {
                    try timer.stream.copy(toHost: $0.baseAddress!, from: output, bytes: $0.count)
                }
                try timer.stream.synchronize()
                return result.map(Float.init)
            },
            matchesHost: { _ in true }, tolerance: 0)
        return outcome.best ?? 0
    }
}
