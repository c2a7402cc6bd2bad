import Foundation
import KilnIR
import KilnRuntime

/// What an engine needs for one set of input shapes, whatever the context: the specialized graph, its lowered
/// layers, the arena layout, uploaded weights and derived constants, compiled kernels and chosen library
/// algorithms. Built once per shape (`CUDAPlanBuilder`) and shared; each execution context binds it to an arena
/// of its own (`bind`).
final class CUDAShapeProgram: @unchecked Sendable {
    enum Work {
        case launch(CUDAFunction, CUDALaunch)
        case library(CUDALibraryRunner)
        case copy(CUDACopy)
        /// A layer the GPU cannot run: its inputs come to the host, the CPU kernel runs, its outputs go back.
        case host(any Kernel)
    }

    struct Step {
        var node: Int
        /// Which of the node's lowering steps this is.
        var part: Int
        var work: Work
    }

    /// A lowering step by its node's name, the same at every shape of a graph.
    struct PartKey: Hashable {
        var node: String
        var part: Int
    }

    let graph: Graph
    let nodes: [CUDAPlanBuilder.LoweredNode]
    let steps: [Step]
    /// The layout without an arena; each context's copy gets one.
    let memory: CUDAMemoryLayout
    let workspaceBytes: Int
    let device: CUDADevice

    init(
        graph: Graph, nodes: [CUDAPlanBuilder.LoweredNode], steps: [Step], memory: CUDAMemoryLayout, device: CUDADevice
    ) {
        self.graph = graph
        self.nodes = nodes
        self.steps = steps
        self.memory = memory
        self.device = device
        workspaceBytes = steps.reduce(0) { bytes, step in
            if case .library(let runner) = step.work { return max(bytes, runner.workspaceBytes) }
            return bytes
        }
    }

    /// The tactic each library step chose (`CUDALibraryRunner.choice`).
    var choices: [PartKey: Int] {
        var all: [PartKey: Int] = [:]
        for step in steps {
            guard case .library(let runner) = step.work else { continue }
            all[PartKey(node: nodes[step.node].node.name, part: step.part)] = runner.choice
        }
        return all
    }

    /// Which alternative launch (an index into `CUDALaunchChoice.launches`) each step that has them runs
    /// (`CUDALowering.alternatives`).
    var launchChoices: [PartKey: Int] {
        var all: [PartKey: Int] = [:]
        for lowered in nodes {
            guard let lowering = lowered.lowering else { continue }
            for (part, choice) in lowering.alternatives {
                guard part < lowering.steps.count, case .launch(let launch) = lowering.steps[part],
                    let index = choice.launches.firstIndex(of: launch)
                else { continue }
                all[PartKey(node: lowered.node.name, part: part)] = index
            }
        }
        return all
    }

    /// The tactic keys of the steps with alternative launches.
    var launchTacticKeys: [String] {
        nodes.flatMap { $0.lowering?.alternatives.values.map { CUDALibraries.kernelPrefix + $0.signature } ?? [] }
    }

    var hasHostSteps: Bool { nodes.contains { $0.lowering == nil } }

    /// The layers and the memory one context needs, known before any context allocates.
    var report: EngineReport {
        let launches = steps.filter { if case .host = $0.work { false } else { true } }.count
        let layers = nodes.enumerated().map { index, lowered -> EngineReport.Layer in
            let count = steps.filter { $0.node == index }.count
            // Inputs stored inside this node's output (a concat's, written there by their producers).
            let output = lowered.node.outputs.first ?? ""
            let inside = lowered.node.inputs.filter { !$0.isEmpty && memory.isStored($0, inside: output) }.count
            let implementation: String
            if let reason = lowered.fallbackReason {
                implementation = "cpu fallback: \(reason)"
            } else if let lowering = lowered.lowering, !lowering.aliases.isEmpty, lowering.steps.isEmpty {
                implementation = "view (no copy)"
            } else if count == 0 {
                implementation = inside > 0 ? "no work (inputs written in place)" : "no work"
            } else {
                implementation =
                    "cuda: \(count) step\(count == 1 ? "" : "s")"
                    + (inside > 0 ? ", \(inside) of \(lowered.node.inputs.count) inputs written in place" : "")
                    + (lowered.lowering?.writesSlot == true ? ", output written into its concat's" : "")
            }
            return EngineReport.Layer(name: lowered.node.name, kind: lowered.node.kind, implementation: implementation)
        }
        return EngineReport(
            layers: layers, activationBytes: memory.plan.arenaBytes, naiveActivationBytes: memory.plan.naiveBytes,
            weightBytes: memory.weightBytes, launches: launches, workspaceBytes: workspaceBytes)
    }

    /// A plan for one execution context: its own arena, workspace and stream, every step bound to them.
    func bind() throws -> CUDAPlan {
        let memory = try self.memory.withArena(on: device)
        let workspace = CUDAWorkspace()
        workspace.reserve(workspaceBytes)
        try workspace.allocate(on: device.context)
        let bound = try steps.map { step -> CUDAPlan.Step in
            let node = nodes[step.node].node
            return try withErrorContext("layer \(step.node) '\(node.name)' (\(node.kind))") {
                let resolve = { (operand: CUDAOperand) throws -> UInt64 in
                    try memory.address(of: operand, node: step.node)
                }
                let work: CUDAPlan.Work
                switch step.work {
                case .launch(let function, let launch):
                    work = .launch(try launch.prepare(function, resolve: resolve))
                case .library(let runner):
                    work = .library(try runner.bind(resolve: resolve, workspace: workspace))
                case .copy(let copy):
                    work = .copy(
                        to: try resolve(copy.destination) + UInt64(copy.destinationOffset),
                        from: try resolve(copy.source) + UInt64(copy.sourceOffset), bytes: copy.bytes)
                case .host(let kernel):
                    work = .host(kernel)
                }
                return CUDAPlan.Step(node: step.node, work: work)
            }
        }
        return try CUDAPlan(shape: self, steps: bound, memory: memory, workspace: workspace)
    }
}
