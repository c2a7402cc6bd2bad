import KilnIR

/// Measures the range of activations by running the float engine over calibration batches: a first pass
/// finds each value's largest magnitude, a second (for the histogram calibrators) fills its histogram.
public struct Calibrator: Sendable {
    public var method: CalibrationMethod
    /// Hears each finished batch: (batches done, batches in all passes).
    public var progress: (@Sendable (_ done: Int, _ total: Int) -> Void)?

    public init(method: CalibrationMethod, progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil) {
        self.method = method
        self.progress = progress
    }

    /// The ranges of `values` (names in `graph`) on `batches` (input name -> tensor).
    public func calibrate(
        _ graph: Graph, values: [String], device: any Device, batches: [[String: Tensor]]
    ) throws -> CalibrationTable {
        guard !batches.isEmpty else { throw KilnError.invalidArgument("no calibration data") }
        var unique: [String] = []
        for name in values where !unique.contains(name) { unique.append(name) }
        let values = unique
        let engine = try Engine(graph: Self.exposing(values, in: graph), device: device)
        let context = engine.makeContext()
        let passes = method.needsHistogram ? 2 : 1
        var done = 0
        func each(_ body: (String, UnsafeBufferPointer<Float>) -> Void) throws {
            for batch in batches {
                let feeds = batch.mapValues(Value.tensor)
                let outputs = try context.run(feeds)
                for name in values {
                    guard let tensor = try? (outputs[name] ?? feeds[name])?.asTensor(), tensor.dtype == .float32 else {
                        throw KilnError.runtime("calibration: no float32 value '\(name)' in the engine's outputs")
                    }
                    tensor.withUnsafeBuffer(as: Float.self) { body(name, $0) }
                }
                done += 1
                progress?(done, batches.count * passes)
            }
        }
        var maxima = Dictionary(uniqueKeysWithValues: values.map { ($0, Float(0)) })
        try each { name, buffer in
            var m = maxima[name]!
            for v in buffer where v.isFinite { m = max(m, abs(v)) }
            maxima[name] = m
        }
        var histograms = maxima.mapValues { MagnitudeHistogram(maximum: $0) }
        if method.needsHistogram {
            try each { name, buffer in histograms[name]!.add(buffer) }
        }
        let samples = Self.sampleCount(batches, graph)
        return CalibrationTable(
            method: method.description, samples: samples, ranges: histograms.mapValues { method.amax($0) })
    }

    /// Samples in `batches`: the leading dimension of the graph's first input in each.
    static func sampleCount(_ batches: [[String: Tensor]], _ graph: Graph) -> Int {
        batches.reduce(0) { sum, batch in sum + (graph.inputs.first.flatMap { batch[$0.name]?.shape.first } ?? 1) }
    }

    /// `graph` with `values` added to its outputs (graph inputs excepted: the feeds hold those).
    static func exposing(_ values: [String], in graph: Graph) -> Graph {
        var graph = graph
        let present = Set(graph.outputs.map(\.name) + graph.inputs.map(\.name))
        for name in values where !present.contains(name) {
            graph.outputs.append(GraphValue(name: name, type: graph.type(of: name)))
        }
        return graph
    }
}
