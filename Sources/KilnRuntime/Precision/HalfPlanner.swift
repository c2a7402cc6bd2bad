import KilnIR
import KilnOptimizer

/// Turns an optimized float32 graph into its mixed-precision form (`HalfPrecision`) and, given validation
/// data, measures the outputs against float32; with a tolerance it moves the 16-bit layers whose own outputs
/// differ most from float32 back to float32, a few at a time, until the outputs are within it.
struct HalfPlanner {
    let config: HalfConfig
    let device: any Device

    /// Refuses a device with no 16-bit kernel for any layer of `graph`.
    static func checkDevice(_ device: any Device, dtype: DType, graph: Graph) throws {
        guard graph.nodes.contains(where: { device.runsInHalfPrecision($0, dtype: dtype) }) else {
            throw KilnError.unsupported(
                "the \(device.properties.kind) device has no fast \(dtype.onnxName) kernels: build for a GPU "
                    + "(--device cuda) or in float32")
        }
    }

    func run(_ graph: Graph) throws -> (Graph, PrecisionReport) {
        let dtype = config.dtype
        let device = self.device
        let batches = config.validation ?? []
        if config.tolerance != nil, batches.isEmpty {
            throw KilnError.invalidArgument(
                "the accuracy guard needs validation data (--validation) with the tolerance")
        }
        func convert(_ keep: Set<String>) throws -> (Graph, [HalfPrecision.Decision]) {
            var g = graph
            let pass = HalfPrecision(
                dtype: dtype, ioType: config.ioType, keepFloat: config.keepFloat.union(keep),
                runsInHalf: { device.runsInHalfPrecision($0, dtype: dtype) })
            let decisions = try pass.apply(&g)
            return (g, decisions)
        }
        var (converted, decisions) = try convert([])
        var moved: [String] = []
        var errors: [String: FloatDifference] = [:]
        if !batches.isEmpty {
            let evaluator = OutputEvaluator(device: device, batches: batches)
            let names = graph.outputs.map(\.name)
            func worst(_ e: [String: FloatDifference]) -> Double { names.compactMap { e[$0]?.relative }.max() ?? 0 }
            let halfLayers = Set(decisions.filter { $0.reason == nil }.map(\.node))
            let layerOutputs = graph.nodes.filter { halfLayers.contains($0.name) }.compactMap(\.outputs.first)
            let reference = try evaluator.outputs(graph, extra: config.tolerance == nil ? [] : layerOutputs)
            errors = try evaluator.errors(converted, extra: [], reference: reference)
            if let tolerance = config.tolerance, worst(errors) > tolerance {
                // Each layer's own output error in the all-16-bit engine ranks the layers.
                let each = try evaluator.errors(converted, extra: layerOutputs, reference: reference)
                let ranked = graph.nodes.filter { halfLayers.contains($0.name) }
                    .map { node in (node.name, node.outputs.first.flatMap { each[$0]?.relative } ?? 0) }
                    .sorted { $0.1 > $1.1 }
                var next = 0
                while worst(errors) > tolerance, next < ranked.count {
                    let step = max(1, ranked.count / 16)
                    moved += ranked[next..<min(next + step, ranked.count)].map(\.0)
                    next += step
                    (converted, decisions) = try convert(Set(moved))
                    errors = try evaluator.errors(converted, extra: [], reference: reference)
                    config.log?("moved \(moved.count) layers to float32: outputs now \(worst(errors))")
                }
            }
        }
        let report = PrecisionReport(
            precision: dtype.onnxName, calibrator: "none", calibrationSamples: 0, fromCache: false,
            guardData: "validation", guardSamples: Calibrator.sampleCount(batches, graph), tolerance: config.tolerance,
            layers: decisions.map {
                .init(
                    name: $0.node, precision: $0.precision == .float32 ? "float32" : dtype.onnxName, reason: $0.reason)
            },
            outputs: graph.outputs.compactMap { output in
                errors[output.name].map {
                    .init(name: output.name, relativeError: $0.relative, maxAbsoluteDifference: $0.largest)
                }
            },
            movedToFloat: moved)
        return (converted, report)
    }
}
