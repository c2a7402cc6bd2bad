import Foundation
import KilnIR

extension CUDAPlanBuilder {
    /// `nodes` with each step that has alternatives (`CUDALowering.alternatives`) set to the launch that runs:
    /// the one a plan or timing cache knows for its signature; after the build, the one the same step chose at
    /// `reference`; while building with timing on (and within the build budget), the fastest on this shape's
    /// memory; else the first (the lowering's estimate).
    func choosingLaunches(
        _ nodes: [LoweredNode], _ memory: CUDAMemoryLayout, _ graph: Graph
    ) throws
        -> [LoweredNode]
    {
        var nodes = nodes
        let kernels = device.options.kernels
        let timing = !afterBuild && kernels.tuneLibraries && (kernels.tuningDeadline.map { Date() < $0 } ?? true)
        let followed = reference?.launchChoices ?? [:]
        var timed: [(node: Int, part: Int, choice: CUDALaunchChoice)] = []
        for (index, lowered) in nodes.enumerated() {
            for (part, choice) in lowered.lowering?.alternatives ?? [:] {
                let key = CUDAShapeProgram.PartKey(node: lowered.node.name, part: part)
                let known = device.libraries.kernelChoice(choice.signature) ?? (afterBuild ? followed[key] : nil)
                if let known, choice.launches.indices.contains(known) {
                    nodes[index].lowering?.steps[part] = .launch(choice.launches[known])
                } else if timing {
                    timed.append((index, part, choice))
                }
            }
        }
        guard !timed.isEmpty else { return nodes }
        try device.modules.prepare(timed.flatMap { $0.choice.launches.map(\.source) })
        let bound = try memory.withArena(on: device)
        let timer = try CUDATacticTimer(context: device.context)
        for (index, part, choice) in timed {
            let best = try withErrorContext("timing the launches of layer \(index) '\(nodes[index].node.name)'") {
                try fastest(choice, part: part, node: index, nodes, bound, graph, timer)
            }
            device.libraries.remember(kernelChoice: best, for: choice.signature)
            nodes[index].lowering?.steps[part] = .launch(choice.launches[best])
        }
        return nodes
    }

    /// The fastest of `choice`'s launches (by `CUDATacticTimer.fastest`: median of 5, 3% margin over the first)
    /// among those that write the same bytes as the first, on the node's activation inputs filled with random
    /// bytes and run through the node's steps before `part`.
    private func fastest(
        _ choice: CUDALaunchChoice, part: Int, node index: Int, _ nodes: [LoweredNode], _ memory: CUDAMemoryLayout,
        _ graph: Graph, _ timer: CUDATacticTimer
    ) throws -> Int {
        let node = nodes[index].node
        let resolve = { (operand: CUDAOperand) throws -> UInt64 in try memory.address(of: operand, node: index) }
        func bytes(_ name: String) -> Int {
            guard let type = graph.type(of: name)?.tensorType, let shape = type.concreteShape else { return 0 }
            return Tensor.elementCount(shape) * type.dtype.byteSize
        }
        var generator = SeededGenerator(seed: 0x6B69_6C6E)
        let block = (0..<(1 << 17)).map { _ in generator.next() }
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
