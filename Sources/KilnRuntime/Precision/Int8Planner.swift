import Foundation
import KilnIR
import KilnOptimizer

/// Turns an optimized float graph into its int8 form: calibrates (or reads the cache), quantizes every
/// candidate layer, keeps activations int8 between the convolutions the device chains (`chaining`), measures
/// the outputs against float32 and, given a tolerance, moves the most sensitive layers back to float32 until
/// the outputs are within it.
struct Int8Planner {
    let config: Int8Config
    let device: any Device
    var chaining = true
    /// The builder's device layout passes: the guard measures graphs as the engine will run them (a chained
    /// convolution has kernels only in its channels-last form).
    var layout: (inout Graph) throws -> Void = { _ in }

    func run(_ graph: Graph) throws -> (Graph, PrecisionReport) {
        var floatReasons: [String: String] = [:]
        let candidates = Int8Quantization.candidates(graph) { floatReasons[$0] = $1 }
        let (table, fromCache) = try ranges(graph, candidates.map(\.input) + chainedOutputs(graph, candidates))
        let layerOutputs = config.perLayer ? outputsOf(candidates.map(\.node), graph) : []

        let guardBatches = config.validation ?? config.calibration
        if config.tolerance != nil, guardBatches.isEmpty {
            throw KilnError.invalidArgument(
                "the accuracy guard needs data to measure on: give calibration or validation data with the tolerance")
        }
        let quantize = { (keep: Set<String>) throws -> (Graph, [String], [String: String]) in
            var g = graph
            var reasons = floatReasons
            let done = try Int8Quantization(ranges: table.ranges, keepFloat: keep).apply(&g) { reasons[$0] = $1 }
            if chaining {
                let device = device
                let chained = try Int8Chaining(
                    ranges: table.ranges, floatValues: Set(layerOutputs),
                    chains: { device.chainsInt8($0, input: $1, weights: $2) }
                ).apply(&g)
                if !chained.isEmpty {
                    config.log?("\(chained.count) int8 convolutions read and write int8 activations (chained)")
                }
            }
            return (g, done, reasons)
        }
        var (quantized, int8Layers, reasons) = try quantize([])
        let evaluator = OutputEvaluator(device: device, batches: guardBatches, layout: layout)
        var moved: [String] = []
        var errors: [String: FloatDifference] = [:]
        if !guardBatches.isEmpty {
            let reference = try evaluator.outputs(graph, extra: layerOutputs)
            errors = try evaluator.errors(quantized, extra: layerOutputs, reference: reference)
            let names = graph.outputs.map(\.name)
            if config.tolerance != nil, !names.contains(where: { errors[$0] != nil }) {
                throw KilnError.unsupported(
                    "the accuracy guard compares float32 outputs, and this model has none: build without a tolerance")
            }
            /// The worst output error (FloatDifference makes a NaN infinitely far).
            func worst(_ e: [String: FloatDifference]) -> Double { names.compactMap { e[$0]?.relative }.max() ?? 0 }
            if let tolerance = config.tolerance, worst(errors) > tolerance {
                config.log?(
                    String(
                        format: "int8 outputs differ by %.3g (tolerance %.3g): ranking layers", worst(errors), tolerance
                    ))
                var sensitivity: [(String, Double)] = []
                for (index, layer) in int8Layers.enumerated() {
                    config.progress?("sensitivity", index, int8Layers.count)
                    let (alone, _, _) = try quantize(Set(int8Layers).subtracting([layer]))
                    sensitivity.append((layer, worst(try evaluator.errors(alone, extra: [], reference: reference))))
                }
                config.progress?("sensitivity", int8Layers.count, int8Layers.count)
                for (layer, alone) in sensitivity.sorted(by: { $0.1 > $1.1 }) {
                    moved.append(layer)
                    (quantized, int8Layers, reasons) = try quantize(Set(moved))
                    errors = try evaluator.errors(quantized, extra: layerOutputs, reference: reference)
                    config.log?(
                        String(
                            format: "moved %@ to float32 (alone it gave %.3g): outputs now %.3g", layer, alone,
                            worst(errors)))
                    if worst(errors) <= tolerance { break }
                }
            }
        }
        let report = PrecisionReport(
            precision: "int8", calibrator: table.method, calibrationSamples: table.samples, fromCache: fromCache,
            guardData: config.validation == nil ? "calibration" : "validation",
            guardSamples: Calibrator.sampleCount(guardBatches, graph),
            tolerance: config.tolerance,
            layers: graph.nodes.compactMap { node in
                if int8Layers.contains(node.name) {
                    let error = node.outputs.first.flatMap { errors[$0]?.relative }
                    return .init(name: node.name, precision: "int8", reason: nil, relativeError: error)
                }
                return reasons[node.name].map { .init(name: node.name, precision: "float32", reason: $0) }
            },
            outputs: graph.outputs.compactMap { output in
                errors[output.name].map {
                    .init(name: output.name, relativeError: $0.relative, maxAbsoluteDifference: $0.largest)
                }
            },
            movedToFloat: moved)
        return (quantized, report)
    }

    /// The calibrated ranges: from the cache when it covers `values` with this calibrator, else measured (and
    /// then saved to the cache).
    private func ranges(_ graph: Graph, _ values: [String]) throws -> (CalibrationTable, Bool) {
        if let url = config.cache, let cached = try CalibrationTable.load(url) {
            let needed = Set(values)
            let missing = needed.filter { cached.ranges[$0] == nil }.sorted()
            if missing.isEmpty, cached.method == config.method.description {
                config.log?(
                    "calibration cache \(url.lastPathComponent): \(needed.count) ranges (\(cached.method)); not calibrating"
                )
                return (cached, true)
            }
            config.log?(
                "calibration cache \(url.lastPathComponent) "
                    + (missing.isEmpty
                        ? "was made with \(cached.method), not \(config.method)"
                        : "lacks \(missing.count) of this model's \(needed.count) ranges (first: '\(missing[0])')")
                    + "; calibrating again")
        }
        guard !config.calibration.isEmpty else {
            throw KilnError.invalidArgument(
                "int8 needs calibration data (--calibration) or a calibration cache that covers the model")
        }
        let progress = config.progress
        let calibrator = Calibrator(method: config.method) { done, total in progress?("calibration", done, total) }
        let table = try calibrator.calibrate(graph, values: values, device: device, batches: config.calibration)
        if let url = config.cache { try table.save(url) }
        return (table, false)
    }

    /// The outputs of the candidate convolutions the device could chain (`Int8Chaining` stores a chain's last
    /// output with its own range); none unless chaining is on.
    private func chainedOutputs(_ graph: Graph, _ candidates: [Int8Quantization.Candidate]) -> [String] {
        guard chaining else { return [] }
        let names = Set(candidates.map(\.node))
        return graph.nodes.compactMap { node in
            guard names.contains(node.name), node.layer is ConvolutionLayer, node.inputs.count > 1,
                let x = graph.type(of: node.inputs[0])?.tensorType, let w = graph.type(of: node.inputs[1])?.tensorType,
                device.chainsInt8(node, input: x, weights: w)
            else { return nil }
            return node.outputs.first
        }
    }

    private func outputsOf(_ layers: [String], _ graph: Graph) -> [String] {
        graph.nodes.filter { layers.contains($0.name) }.flatMap(\.outputs)
    }
}

/// Runs graphs over the guard's batches and compares their outputs.
struct OutputEvaluator {
    let device: any Device
    let batches: [[String: Tensor]]
    /// Applied to each graph before it runs (the device layout passes).
    var layout: (inout Graph) throws -> Void = { _ in }

    /// Every output (and each of `extra`) as floats, the batches one after another.
    func outputs(_ graph: Graph, extra: [String]) throws -> [String: [Float]] {
        var exposed = Calibrator.exposing(extra, in: graph)
        try layout(&exposed)
        let engine = try Engine(graph: exposed, device: device)
        let context = engine.makeContext()
        var result: [String: [Float]] = [:]
        for batch in batches {
            for (name, value) in try context.run(batch.mapValues(Value.tensor)) {
                // Float outputs, the 16-bit values of a mixed-precision engine's layers widened to float32.
                guard var tensor = try? value.asTensor(), [.float32, .float16, .bfloat16].contains(tensor.dtype)
                else { continue }
                if tensor.dtype != .float32 { tensor = try tensor.cast(to: .float32) }
                result[name, default: []] += tensor.withUnsafeBuffer(as: Float.self) { Array($0) }
            }
        }
        return result
    }

    /// How far each value of `graph` is from `reference`.
    func errors(_ graph: Graph, extra: [String], reference: [String: [Float]]) throws -> [String: FloatDifference] {
        let got = try outputs(graph, extra: extra)
        var result: [String: FloatDifference] = [:]
        for (name, expected) in reference {
            guard let actual = got[name], actual.count == expected.count else { continue }
            result[name] = FloatDifference(actual, expected)
        }
        return result
    }
}
