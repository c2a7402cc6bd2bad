import Foundation
import KilnIR
import KilnOptimizer
import KilnRuntime

/// Builds what one set of input shapes needs, for every context: specialize the graph to the shapes, lower
/// every node, lay out the arena, upload weights and derived constants, compile kernels, choose library
/// algorithms. Contexts bind the result to their own memory (`CUDAShapeProgram.bind`).
struct CUDAPlanBuilder {
    let program: CUDAProgram
    let inputShapes: [[Int]]
    /// A shape met after the build times nothing: its library steps take the choices the same layers made at
    /// `reference` (a shape the build compiled, when there is one).
    var afterBuild = false
    var reference: CUDAShapeProgram?
    var device: CUDADevice { program.device }

    /// A node as it will run: its lowering, or why it runs on the CPU.
    struct LoweredNode {
        var node: Node
        var lowering: CUDALowering?
        var fallbackReason: String?
    }

    func build() throws -> CUDAShapeProgram {
        let graph = try program.graph.specialized(
            toInputShapes: inputShapes, evaluator: device.host, disabledPasses: device.options.disabledPasses)
        let placesInputs = !device.options.disabledPasses.contains(Pipeline.concatInPlace)
        // Nodes lower in order, so a concat knows which of its inputs their producers wrote into its output.
        let offers = placesInputs ? CUDAConcatSlots.offers(graph) : [:]
        var written: [Int: Set<Int>] = [:]
        var slots: [String: (value: String, offset: Int)] = [:]
        var lowered: [LoweredNode] = []
        for (index, node) in graph.nodes.enumerated() {
            let placed = written[index] ?? []
            var result = try lower(node, index: index, in: graph, slot: nil, placedInputs: placed)
            if let offer = offers[index] {
                let slotted = try lower(node, index: index, in: graph, slot: offer.slot, placedInputs: placed)
                if let lowering = slotted.lowering, lowering.writesSlot, try takesSlot(lowering, over: result.lowering)
                {
                    result = slotted
                    written[offer.concat, default: []].insert(offer.input)
                    slots[node.outputs[0]] = (graph.nodes[offer.concat].outputs[0], offer.byteOffset)
                }
            }
            lowered.append(result)
        }
        var memory = try CUDAMemoryLayout(
            graph: graph, nodes: lowered, slots: slots, placesInputs: placesInputs,
            overwritesInputs: !device.options.disabledPasses.contains(Pipeline.pointwiseInPlace))
        try memory.bindWeights { name, tensor in try program.weight(name, tensor) }
        try memory.uploadConstants(on: device)
        // Every kernel compiles in one parallel batch, the alternatives to time among them.
        let (known, timed) = knownLaunches(lowered)
        try device.modules.prepare(
            known.flatMap { $0.lowering?.launchSources ?? [] } + timed.flatMap { $0.choice.launches.map(\.source) })
        let chosen = try timingLaunches(timed, known, memory, graph)
        let steps = try prepareSteps(chosen, memory)
        return CUDAShapeProgram(graph: graph, nodes: chosen, steps: steps, memory: memory, device: device)
    }

    private func lower(
        _ node: Node, index: Int, in graph: Graph, slot: CUDAOutputSlot?, placedInputs: Set<Int>
    ) throws -> LoweredNode {
        try withErrorContext("layer \(index) '\(node.name)' (\(node.kind))") {
            do {
                guard let lowering = CUDALoweringRegistry.all[node.kind] else {
                    throw KilnError.unsupported("the CUDA backend has no kernel for layer kind '\(node.kind)'")
                }
                var info = try nodeInfo(node, graph)
                info.outputSlot = slot
                info.placedInputs = placedInputs
                return LoweredNode(node: node, lowering: try lowering(info))
            } catch let error as KilnError where error.kind == .unsupported {
                guard device.options.allowCPUFallback else {
                    throw KilnError.unsupported(error.description + " (--allow-cpu-fallback runs it on the CPU)")
                }
                return LoweredNode(node: node, lowering: nil, fallbackReason: error.description)
            }
        }
    }

    /// Whether a layer runs `slotted` (writing into its concat's output) rather than `dense`: the libraries must
    /// have an algorithm for the strides (cuDNN refuses some), and a cuDNN convolution, whose algorithms change
    /// with the output's strides, must take no longer than the dense one and the copy it saves where the build
    /// times tactics. That choice is remembered like a tactic (`slot <signature>`: 1 takes the slot, 0 not), so
    /// a plan or timing cache gives the same engine without timing; untimed, the slot is taken.
    private func takesSlot(_ slotted: CUDALowering, over dense: CUDALowering?) throws -> Bool {
        let allowTF32 = device.options.kernels.allowTF32
        for step in slotted.steps {
            switch step {
            case .matMul(let product) where product.rowStrideD != nil:
                guard
                    (try? CUDAMatMulRunner(
                        step: product, library: device.libraries.cublasLt(), allowTF32: allowTF32, candidates: 1))
                        != nil
                else { return false }
            case .convolution(let convolution) where convolution.outputStrides != nil:
                guard
                    let runner = try? CUDAConvolutionRunner(
                        step: convolution, library: device.libraries.cudnn(), allowTF32: allowTF32)
                else { return false }
                let key = "slot " + runner.signature
                if let known = device.libraries.kernelChoice(key) { return known == 1 }
                var plain = convolution
                plain.outputStrides = nil
                let deadline = device.options.kernels.tuningDeadline
                guard !afterBuild, device.options.kernels.tuneLibraries, deadline.map({ Date() < $0 }) ?? true,
                    dense?.steps.contains(where: { if case .convolution(plain) = $0 { true } else { false } }) == true
                else { return true }
                let strided = try device.libraries.runner(
                    for: convolution, allowTF32: allowTF32, rule: .timed(tune: true, deadline: deadline))
                let packed = try device.libraries.runner(
                    for: plain, allowTF32: allowTF32, rule: .timed(tune: true, deadline: deadline))
                var takes = true
                if let slotTime = strided.milliseconds, let denseTime = packed.milliseconds {
                    let bytes = plain.outputShape.reduce(1, *) * plain.dtype.byteSize
                    let copyTime = try CUDATacticTimer(context: device.context).copyMilliseconds(
                        device.context, bytes: bytes)
                    takes = slotTime <= denseTime + copyTime
                }
                device.libraries.remember(kernelChoice: takes ? 1 : 0, for: key)
                return takes
            default: continue
            }
        }
        return true
    }

    private func nodeInfo(_ node: Node, _ graph: Graph) throws -> CUDANodeInfo {
        let inputs = try node.inputs.map { name -> TensorType? in
            guard !name.isEmpty else { return nil }
            guard let type = graph.type(of: name)?.tensorType, type.concreteShape != nil else {
                throw KilnError.unsupported("input '\(name)' has no static tensor shape")
            }
            return type
        }
        let outputs = try node.outputs.map { name -> TensorType in
            guard let type = graph.type(of: name)?.tensorType, type.concreteShape != nil else {
                throw KilnError.unsupported("output '\(name)' has no static tensor shape (data-dependent)")
            }
            return type
        }
        return CUDANodeInfo(
            node: node, inputs: inputs, outputs: outputs,
            constants: node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0] },
            architecture: device.context.computeCapability, multiprocessors: device.context.multiprocessors,
            options: device.options.kernels)
    }

    /// How the library step `part` of `node` chooses its algorithm: timed as the options say while building;
    /// after it, as the same step chose at `reference` (`referenceChoices`).
    private func rule(for node: Node, part: Int, _ referenceChoices: [CUDAShapeProgram.PartKey: Int]) -> CUDATacticRule
    {
        let kernels = device.options.kernels
        guard afterBuild else { return .timed(tune: kernels.tuneLibraries, deadline: kernels.tuningDeadline) }
        return .following(referenceChoices[CUDAShapeProgram.PartKey(node: node.name, part: part)])
    }

    /// Each step with its compiled function or chosen library algorithm; addresses come later, per context.
    private func prepareSteps(_ nodes: [LoweredNode], _ memory: CUDAMemoryLayout) throws -> [CUDAShapeProgram.Step] {
        var steps: [CUDAShapeProgram.Step] = []
        let kernels = device.options.kernels
        let referenceChoices = reference?.choices ?? [:]
        for (index, lowered) in nodes.enumerated() {
            try withErrorContext("layer \(index) '\(lowered.node.name)' (\(lowered.node.kind))") {
                guard let lowering = lowered.lowering else {
                    let kernel = try device.host.makeKernel(lowered.node, subgraphs: HostSubgraphs(device: device.host))
                    steps.append(CUDAShapeProgram.Step(node: index, part: 0, work: .host(kernel)))
                    return
                }
                for (part, step) in lowering.steps.enumerated() {
                    let work: CUDAShapeProgram.Work
                    switch step {
                    case .launch(let launch):
                        work = .launch(try device.modules.function(for: launch), launch)
                    case .matMul(let product):
                        let runner = try device.libraries.runner(
                            for: product, allowTF32: kernels.allowTF32,
                            candidates: kernels.tuneLibraries ? kernels.tacticCandidates : 1,
                            rule: rule(for: lowered.node, part: part, referenceChoices))
                        work = .library(.matMul(runner, product))
                    case .convolution(let convolution):
                        let runner = try device.libraries.runner(
                            for: convolution, allowTF32: kernels.allowTF32,
                            rule: rule(for: lowered.node, part: part, referenceChoices))
                        work = .library(.convolution(runner, convolution))
                    case .copy(let copy):
                        if memory.copiesInPlace(copy, node: index) { continue }
                        work = .copy(copy)
                    }
                    steps.append(CUDAShapeProgram.Step(node: index, part: part, work: work))
                }
            }
        }
        return steps
    }
}

extension CUDALaunch {
    /// This launch of `function` with its arguments packed (operand addresses from `resolve`).
    func prepare(_ function: CUDAFunction, resolve: (CUDAOperand) throws -> UInt64) throws -> PreparedLaunch {
        try function.prepare(
            grid: grid, block: block, sharedBytes: sharedBytes, arguments: arguments, resolve: resolve)
    }
}

extension CUDALowering {
    var launchSources: [CUDASource] {
        steps.compactMap { step in
            if case .launch(let launch) = step { return launch.source }
            return nil
        }
    }
}

/// Control-flow bodies of fallback layers run on the CPU too.
struct HostSubgraphs: SubgraphCompiler {
    let device: any Device
    func compile(_ graph: Graph) throws -> CompiledGraph { try CompiledGraph(graph: graph, device: device) }
}
