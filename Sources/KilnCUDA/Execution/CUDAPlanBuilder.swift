import Foundation
import KilnIR
import KilnRuntime

/// Builds the plan for one set of input shapes: specialize the graph to the shapes, lower every node, place
/// activations in one arena, upload weights and derived constants, compile kernels, bind addresses.
struct CUDAPlanBuilder {
    let program: CUDAProgram
    let inputShapes: [[Int]]
    var device: CUDADevice { program.device }

    /// A node as it will run: its lowering, or why it runs on the CPU.
    struct LoweredNode {
        var node: Node
        var lowering: CUDALowering?
        var fallbackReason: String?
    }

    func build() throws -> CUDAPlan {
        let graph = try program.graph.specialized(
            toInputShapes: inputShapes, evaluator: device.host, disabledPasses: device.options.disabledPasses)
        let lowered = try graph.nodes.enumerated().map { index, node in
            try lower(node, index: index, in: graph)
        }
        var memory = try CUDAMemoryLayout(graph: graph, nodes: lowered)
        try memory.bindWeights { name, tensor in try program.weight(name, tensor) }
        try memory.allocate(on: device)
        try device.modules.prepare(lowered.flatMap { $0.lowering?.launchSources ?? [] })
        let workspace = CUDAWorkspace()
        let steps = try bindSteps(lowered, graph: graph, memory: memory, workspace: workspace)
        try workspace.allocate(on: device.context)
        return try CUDAPlan(
            graph: graph, nodes: lowered, steps: steps, memory: memory, workspace: workspace, device: device)
    }

    private func lower(_ node: Node, index: Int, in graph: Graph) throws -> LoweredNode {
        try withErrorContext("layer \(index) '\(node.name)' (\(node.kind))") {
            do {
                guard let lowering = CUDALoweringRegistry.all[node.kind] else {
                    throw KilnError.unsupported("the CUDA backend has no kernel for layer kind '\(node.kind)'")
                }
                let info = try nodeInfo(node, graph)
                return LoweredNode(node: node, lowering: try lowering(info))
            } catch let error as KilnError where error.kind == .unsupported {
                guard device.options.allowCPUFallback else {
                    throw KilnError.unsupported(error.description + " (--allow-cpu-fallback runs it on the CPU)")
                }
                return LoweredNode(node: node, lowering: nil, fallbackReason: error.description)
            }
        }
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
            architecture: device.context.computeCapability, options: device.options.kernels)
    }

    private func bindSteps(
        _ nodes: [LoweredNode], graph: Graph, memory: CUDAMemoryLayout, workspace: CUDAWorkspace
    ) throws -> [CUDAPlan.Step] {
        var steps: [CUDAPlan.Step] = []
        for (index, lowered) in nodes.enumerated() {
            try withErrorContext("layer \(index) '\(lowered.node.name)' (\(lowered.node.kind))") {
                guard let lowering = lowered.lowering else {
                    let kernel = try device.host.makeKernel(lowered.node, subgraphs: HostSubgraphs(device: device.host))
                    steps.append(CUDAPlan.Step(node: index, work: .host(kernel)))
                    return
                }
                let resolve = { (operand: CUDAOperand) throws -> UInt64 in
                    try memory.address(of: operand, node: index)
                }
                for step in lowering.steps {
                    let work: CUDAPlan.Work
                    switch step {
                    case .launch(let launch):
                        let function = try device.modules.module(for: launch.source).function(launch.function)
                        if launch.sharedBytes > 48 << 10 { try function.setMaxDynamicSharedMemory(launch.sharedBytes) }
                        work = .launch(
                            try function.prepare(
                                grid: launch.grid, block: launch.block, sharedBytes: launch.sharedBytes,
                                arguments: launch.arguments, resolve: resolve))
                    case .matMul(let product):
                        work = .library(
                            try device.libraries.bind(
                                product, resolve: resolve, workspace: workspace,
                                allowTF32: device.options.kernels.allowTF32,
                                tune: device.options.kernels.tuneLibraries))
                    case .convolution(let convolution):
                        work = .library(
                            try device.libraries.bind(
                                convolution, resolve: resolve, workspace: workspace,
                                allowTF32: device.options.kernels.allowTF32))
                    case .copy(let copy):
                        work = .copy(
                            to: try resolve(copy.destination) + UInt64(copy.destinationOffset),
                            from: try resolve(copy.source) + UInt64(copy.sourceOffset), bytes: copy.bytes)
                    }
                    steps.append(CUDAPlan.Step(node: index, work: work))
                }
            }
        }
        return steps
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
