import Foundation
import KilnIR

extension Engine {
    /// The engine as a plan: its graph, the device code compiled so far (compile the shapes you want kept
    /// with `prepare(inputShapes:)` first) and `options` as given to the build.
    /// Only the tactics of this engine's layers go in (a device, or a timing cache, may know others).
    public func plan(options: BuildOptions, memory: [MemoryReport] = []) -> EnginePlan {
        var tactics = device.tactics
        if let used = program.tacticKeys { tactics = tactics.filter { used.contains($0.key) } }
        return EnginePlan(
            device: device.fingerprint, options: options, graph: graph, code: program.compiledCode, memory: memory,
            tactics: tactics, precision: precision)
    }

    /// Loads a plan on `device`: checks that the device can run it, gives the device the plan's compiled
    /// code, and compiles the plan's shapes. The graph is not optimized again, and nothing is timed: another
    /// shape (inside a profile) takes the tactics of the nearest shape the plan compiled.
    public convenience init(plan: EnginePlan, device: any Device) throws {
        let here = device.fingerprint
        guard here.canRun(plan.device) else {
            throw KilnError.invalidPlan(
                "the plan was built for \(plan.device.summary) with Kiln \(plan.kilnVersion); this device is "
                    + "\(here.summary): rebuild it here with `kiln build MODEL --device \(here.kind)`")
        }
        var graph = plan.graph
        try withErrorContext("plan graph") {
            try graph.verify()
            try graph.inferTypes()
        }
        try device.preload(plan.code)
        device.preloadTactics(plan.tactics)
        try self.init(graph: graph, device: device, profiles: plan.options.profiles, precision: plan.precision)
        let sets = plan.options.profiles.flatMap { $0.compiledShapeSets(graphInputs: graph.inputs) }
        for set in (plan.options.shapes.isEmpty ? [] : [plan.options.shapes]) + sets {
            try program.prepare(inputShapes: try orderedShapes(set))
        }
        program.finishBuilding()
    }

    /// Compiles everything these input shapes need now (a GPU engine compiles per shape on first use).
    public func prepare(inputShapes: [[Int]]) throws { try program.prepare(inputShapes: inputShapes) }

    /// The layers as the device runs them for these input shapes, with the memory they need.
    public func describe(inputShapes: [[Int]]) throws -> EngineReport {
        try program.describe(inputShapes: inputShapes)
    }

    /// A shape to compile must have the input's rank, its fixed dimensions, and a size that can exist.
    static func check(_ dims: [Int], fits info: GraphValue) throws {
        _ = try ShapeAxes.checkedCount(dims)
        guard let declared = info.type?.tensorType?.shape else { return }
        guard declared.count == dims.count,
            zip(declared, dims).allSatisfy({ dim, size in dim.value.map { $0 == size } ?? true })
        else {
            throw KilnError.shapeMismatch(
                "shape \(dims) does not fit input '\(info.name)', declared \(info.type.map(\.description) ?? "?")")
        }
    }

    /// `shapes` in graph-input order; every tensor input must be named once.
    public func orderedShapes(_ shapes: [BuildOptions.InputShape]) throws -> [[Int]] {
        let byName = Dictionary(shapes.map { ($0.name, $0.dims) }, uniquingKeysWith: { first, _ in first })
        if let unknown = byName.keys.sorted().first(where: { name in !inputs.contains { $0.name == name } }) {
            throw KilnError.invalidArgument(
                "the model has no input '\(unknown)' (inputs: \(inputs.map(\.name).joined(separator: ", ")))")
        }
        return try inputs.map { info in
            if let dims = byName[info.name] {
                try Self.check(dims, fits: info)
                return dims
            }
            if let dims = info.type?.tensorType?.concreteShape { return dims }
            throw KilnError.invalidArgument(
                "no shape for input '\(info.name)' (declared \(info.type.map(\.description) ?? "?"))")
        }
    }
}
