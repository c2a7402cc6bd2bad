import Foundation
import KilnIR
import KilnOptimizer

/// Turns an optimized float graph into its int8 form: calibrates (or reads the cache), quantizes every
/// candidate layer, keeps activations int8 between the convolutions the device chains (`chaining`), measures
/// the outputs against float32 and, given a tolerance, moves the most sensitive layers out of int8 until the
/// outputs are within it. With `half` the layers left out of int8 (those the guard moves included) run in the
/// 16-bit float where the device has kernels for them, as a `HalfPlanner` build would run them; else float32.
struct Int8Planner {
    let config: Int8Config
    let device: any Device
    var half: HalfConfig?
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
        let device = device
        /// Candidates every quantization leaves float, with the reason.
        var fasterIn16Bits = slowerInInt8(graph, candidates)
        /// The graph quantized with the layers in `moved` (the guard's) kept out of int8 too.
        let quantize = { (moved: Set<String>) throws -> Quantized in
            var g = graph
            var reasons = floatReasons
            var keep = fasterIn16Bits
            for layer in moved { keep[layer] = "moved out of int8 by the accuracy guard" }
            let done = try Int8Quantization(ranges: table.ranges, keepFloat: keep).apply(&g) { reasons[$0] = $1 }
            if chaining {
                let chained = try Int8Chaining(
                    ranges: table.ranges, floatValues: Set(layerOutputs),
                    chains: { device.chainsInt8($0, input: $1, weights: $2) }
                ).apply(&g)
                if !chained.isEmpty {
                    config.log?("\(chained.count) int8 convolutions read and write int8 activations (chained)")
                }
            }
            var precisions: [String: DType] = [:]
            if let half {
                let pass = HalfPrecision(
                    dtype: half.dtype, ioType: half.ioType, keepFloat: half.keepFloat,
                    runsInHalf: { device.runsInHalfPrecision($0, dtype: half.dtype) })
                for decision in try pass.apply(&g) where !done.contains(decision.node) {
                    precisions[decision.node] = decision.precision
                    if let reason = decision.reason { reasons[decision.node] = reason }
                }
            }
            return Quantized(graph: g, int8Layers: done, reasons: reasons, precisions: precisions)
        }
        var quantized = try quantize([])
        if half != nil {
            let lone = Self.quantizedFrom16Bits(quantized.graph)
            if !lone.isEmpty {
                fasterIn16Bits.merge(lone) { a, _ in a }
                quantized = try quantize([])
            }
        }
        let evaluator = OutputEvaluator(device: device, batches: guardBatches, layout: layout)
        var moved: [String] = []
        var errors: [String: FloatDifference] = [:]
        if !guardBatches.isEmpty {
            let reference = try evaluator.outputs(graph, extra: layerOutputs)
            errors = try evaluator.errors(quantized.graph, extra: layerOutputs, reference: reference)
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
                let int8Layers = quantized.int8Layers
                var sensitivity: [(String, Double)] = []
                for (index, layer) in int8Layers.enumerated() {
                    config.progress?("sensitivity", index, int8Layers.count)
                    let alone = try quantize(Set(int8Layers).subtracting([layer])).graph
                    sensitivity.append((layer, worst(try evaluator.errors(alone, extra: [], reference: reference))))
                }
                config.progress?("sensitivity", int8Layers.count, int8Layers.count)
                for (layer, alone) in sensitivity.sorted(by: { $0.1 > $1.1 }) {
                    moved.append(layer)
                    quantized = try quantize(Set(moved))
                    errors = try evaluator.errors(quantized.graph, extra: layerOutputs, reference: reference)
                    config.log?(
                        String(
                            format: "moved %@ to %@ (alone it gave %.3g): outputs now %.3g", layer,
                            (quantized.precisions[layer] ?? .float32).onnxName, alone, worst(errors)))
                    if worst(errors) <= tolerance { break }
                }
            }
        }
        let report = PrecisionReport(
            precision: half.map { "int8+\($0.dtype.onnxName)" } ?? "int8", calibrator: table.method,
            calibrationSamples: table.samples, fromCache: fromCache,
            guardData: config.validation == nil ? "calibration" : "validation",
            guardSamples: Calibrator.sampleCount(guardBatches, graph),
            tolerance: config.tolerance,
            layers: graph.nodes.compactMap { node in
                if quantized.int8Layers.contains(node.name) {
                    let error = node.outputs.first.flatMap { errors[$0]?.relative }
                    return .init(name: node.name, precision: "int8", reason: nil, relativeError: error)
                }
                if let precision = quantized.precisions[node.name] {
                    return .init(name: node.name, precision: precision.onnxName, reason: quantized.reasons[node.name])
                }
                return quantized.reasons[node.name].map { .init(name: node.name, precision: "float32", reason: $0) }
            },
            outputs: graph.outputs.compactMap { output in
                errors[output.name].map {
                    .init(name: output.name, relativeError: $0.relative, maxAbsoluteDifference: $0.largest)
                }
            },
            movedToFloat: moved)
        return (quantized.graph, report)
    }

    /// One way of quantizing the graph: the rewritten graph, its int8 layers, why each other candidate is not
    /// int8, and (with `half`) the precision of each layer left in float.
    private struct Quantized {
        var graph: Graph
        var int8Layers: [String]
        var reasons: [String: String]
        var precisions: [String: DType]
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

    /// The chained 1×1 convolutions of `graph` (quantized, then converted to 16 bits) whose input a quantize
    /// makes from a 16-bit layer's output, with the reason they are left in 16 bits: the quantize moves three
    /// bytes per input value (two in, one out) to save the convolution one, more than an int8 1×1 product gains.
    /// MobileNetV2's projections (after a 16-bit depthwise convolution): 1.50 ms at batch 64 with five of them
    /// int8, 1.44 in float16 (H100, BENCHMARKS.md "int8 and float16 in one engine").
    static func quantizedFrom16Bits(_ graph: Graph) -> [String: String] {
        let inputs = Set(graph.inputs.map(\.name))
        var producers: [String: Node] = [:]
        for node in graph.nodes { for output in node.outputs { producers[output] = node } }
        var result: [String: String] = [:]
        for node in graph.nodes {
            guard let conv = node.layer as? QuantizedConvolutionLayer, conv.writesQuantized,
                let w = graph.initializers[node.inputs[1]]?.shape, w.count == 4,
                (conv.channelsLast ? w[1...2] : w[2...3]).allSatisfy({ $0 == 1 }),
                let quantize = producers[node.inputs[0]], quantize.layer is QuantizeLayer,
                !inputs.contains(quantize.inputs[0])
            else { continue }
            result[node.name] = "a 1x1 convolution whose input would be quantized from 16 bits: faster in 16 bits"
        }
        return result
    }

    /// With `half`, the candidates the device runs faster in the 16-bit float than in int8, with the reason.
    private func slowerInInt8(_ graph: Graph, _ candidates: [Int8Quantization.Candidate]) -> [String: String] {
        guard let half else { return [:] }
        let names = Set(candidates.map(\.node))
        var result: [String: String] = [:]
        for node in graph.nodes where names.contains(node.name) {
            guard let x = graph.type(of: node.inputs[0])?.tensorType,
                let w = graph.type(of: node.inputs[1])?.tensorType,
                !device.int8Beats(node, input: x, weights: w, half: half.dtype, chained: chaining)
            else { continue }
            result[node.name] = "the device runs it faster in \(half.dtype.onnxName) than in int8"
        }
        return result
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
        // Float inputs in the engine's input dtype (a 16-bit engine's I/O type).
        let inputTypes = Dictionary(
            exposed.inputs.compactMap { input in input.type?.tensorType.map { (input.name, $0.dtype) } },
            uniquingKeysWith: { a, _ in a })
        for batch in batches {
            var feeds: [String: Value] = [:]
            for (name, tensor) in batch {
                let dtype = inputTypes[name] ?? tensor.dtype
                let cast = dtype != tensor.dtype && dtype.isFloatingPoint && tensor.dtype.isFloatingPoint
                feeds[name] = .tensor(cast ? try tensor.cast(to: dtype) : tensor)
            }
            for (name, value) in try context.run(feeds) {
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
