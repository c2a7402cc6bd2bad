import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnRuntime

/// Int8 builds end to end on the CPU: calibration, the quantized graph, the accuracy guard, the calibration
/// cache and the plan's precision report.
struct Int8BuildTests {
    let seed = SeededGenerator.testSeed()

    /// conv(3->8)+relu, conv(8->8)+relu, global average pool, flatten, matMul(8->4)+bias.
    static func network(_ gen: inout SeededGenerator) throws -> Graph {
        var n = NetworkBuilder(name: "small")
        let x = n.addInput("x", .float32, [.symbol("N"), 3, 8, 8])
        let c1 = try n.relu(
            try n.convolution(
                x, weights: n.addConstant("w1", .random([8, 3, 3, 3], in: -0.5...0.5, using: &gen)),
                bias: n.addConstant("b1", .random([8], using: &gen)), pads: [1, 1, 1, 1]))
        let c2 = try n.relu(
            try n.convolution(
                c1, weights: n.addConstant("w2", .random([8, 8, 3, 3], in: -0.3...0.3, using: &gen)),
                bias: n.addConstant("b2", .random([8], using: &gen)), pads: [1, 1, 1, 1]))
        let pooled = try n.flatten(try n.globalAveragePool(c2))
        let y = try n.matMul(
            pooled, n.addConstant("w3", .random([8, 4], using: &gen)),
            bias: n.addConstant("b3", .random([4], using: &gen)))
        try n.markOutput(y, as: "y")
        return try n.build()
    }

    static func batches(_ count: Int, _ gen: inout SeededGenerator) -> [[String: Tensor]] {
        (0..<count).map { _ in ["x": Tensor.random([4, 3, 8, 8], in: 0...1, using: &gen)] }
    }

    static func outputs(_ engine: Engine, _ feeds: [String: Tensor]) throws -> [Float] {
        try engine.makeContext().run(feeds.mapValues(Value.tensor))["y"]!.asTensor().scalars(as: Float.self)
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let d = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        let n = b.reduce(0.0) { $0 + Double($1) * Double($1) }
        return (d / max(n, 1e-30)).squareRoot()
    }

    @Test func everyProductRunsInInt8AndStaysClose() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        for method in [CalibrationMethod.entropy, .minMax, .percentile(99.9)] {
            var config = BuilderConfig()
            config.int8 = Int8Config(calibration: Self.batches(4, &gen), method: method)
            let engine = try Builder.build(graph, device: CPUDevice(), config: config)
            let kinds = engine.graph.nodes.map(\.kind.name)
            #expect(kinds.filter { $0 == "convolution.int8" }.count == 2, "\(method), seed \(seed)")
            #expect(kinds.filter { $0 == "matMul.int8" }.count == 1, "\(method), seed \(seed)")
            #expect(!kinds.contains("convolution") && !kinds.contains("matMul"), "seed \(seed)")
            // The float weights are gone; int8 weights and their scales replace them.
            #expect(engine.graph.initializers.values.filter { $0.dtype == .int8 }.count == 3)
            let report = try #require(engine.precision)
            #expect(report.int8LayerCount == 3 && report.calibrator == method.description)
            #expect(report.outputs.map(\.name) == ["y"])
            #expect(report.worstRelativeError < 0.05, "\(method): \(report.worstRelativeError), seed \(seed)")

            let fresh = Self.batches(1, &gen)[0]
            let reference = try Self.outputs(try Builder.build(graph, device: CPUDevice()), fresh)
            let error = Self.relativeError(try Self.outputs(engine, fresh), reference)
            #expect(error < 0.05, "\(method): fresh inputs differ by \(error), seed \(seed)")
        }
    }

    @Test func theGuardMovesTheMostSensitiveLayersBackToFloat() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let data = Self.batches(2, &gen)
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: data, tolerance: 0)
        let strict = try Builder.build(graph, device: CPUDevice(), config: config)
        let report = try #require(strict.precision)
        // Only float32 everywhere meets a zero tolerance.
        #expect(report.movedToFloat.count == 3 && report.int8LayerCount == 0, "seed \(seed)")
        #expect(report.worstRelativeError == 0)
        #expect(report.layers.allSatisfy { $0.reason == "moved out of int8 by the accuracy guard" })
        let reference = try Builder.build(graph, device: CPUDevice())
        #expect(try Self.outputs(strict, data[0]) == Self.outputs(reference, data[0]))

        // A tolerance with nothing to measure on is an error, not a silent pass.
        var cacheOnly = BuilderConfig()
        cacheOnly.int8 = Int8Config(calibration: [], tolerance: 0.1)
        #expect(throws: KilnError.self) { try Builder.build(graph, device: CPUDevice(), config: cacheOnly) }

        config.int8?.tolerance = 1
        let loose = try #require(try Builder.build(graph, device: CPUDevice(), config: config).precision)
        #expect(loose.movedToFloat.isEmpty && loose.int8LayerCount == 3)
    }

    @Test func depthwiseConvolutionsStayFloatWithTheReason() throws {
        var gen = SeededGenerator(seed: seed)
        var n = NetworkBuilder(name: "depthwise")
        let x = n.addInput("x", .float32, [.symbol("N"), 4, 6, 6])
        let d = try n.convolution(
            x, weights: n.addConstant("wd", .random([4, 1, 3, 3], using: &gen)), pads: [1, 1, 1, 1], group: 4)
        let p = try n.convolution(d, weights: n.addConstant("wp", .random([8, 4, 1, 1], using: &gen)))
        try n.markOutput(p, as: "y")
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: [["x": .random([2, 4, 6, 6], using: &gen)]])
        let engine = try Builder.build(try n.build(), device: CPUDevice(), config: config)
        let report = try #require(engine.precision)
        #expect(report.int8LayerCount == 1, "seed \(seed)")
        #expect(report.layers.contains { $0.precision == "float32" && $0.reason?.contains("depthwise") == true })
    }

    @Test func perLayerErrorsAreReported() throws {
        var gen = SeededGenerator(seed: seed)
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: Self.batches(2, &gen), perLayer: true)
        let report = try #require(
            try Builder.build(try Self.network(&gen), device: CPUDevice(), config: config).precision)
        let errors = report.layers.compactMap(\.relativeError)
        #expect(errors.count == 3 && errors.allSatisfy { $0 > 0 && $0 < 0.5 }, "\(errors), seed \(seed)")
    }

    @Test func theCalibrationCacheIsReadInsteadOfCalibrating() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cache-\(seed).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: Self.batches(2, &gen), cache: url)
        let first = try Builder.build(graph, device: CPUDevice(), config: config)
        let table = try #require(try CalibrationTable.load(url))
        #expect(table.ranges.count == 3 && table.method == "entropy" && table.samples == 8)
        #expect(try CalibrationTable(text: table.text, source: "t") == table)

        // No data at all: the cache alone must serve, giving the same engine.
        config.int8?.calibration = []
        let second = try Builder.build(graph, device: CPUDevice(), config: config)
        #expect(second.precision?.fromCache == true && first.precision?.fromCache == false)
        #expect(try second.plan(options: BuildOptions()).encoded() != Data())
        #expect(second.graph.initializers.keys.sorted() == first.graph.initializers.keys.sorted())
        let feeds = Self.batches(1, &gen)[0]
        #expect(try Self.outputs(second, feeds) == Self.outputs(first, feeds))

        // Another calibrator does not take the cache, and without data that is an error saying what to give.
        config.int8?.method = .minMax
        let error = #expect(throws: KilnError.self) { try Builder.build(graph, device: CPUDevice(), config: config) }
        #expect(error?.message.contains("calibration data") == true)
    }

    @Test func badCacheFilesAreErrorsWithTheLine() throws {
        let error = #expect(throws: KilnError.self) {
            try CalibrationTable(text: "calibrator: entropy\nsamples: 3\nnot a range\n", source: "c.txt")
        }
        #expect(error?.message.contains("c.txt:3") == true)
        #expect(throws: KilnError.self) { try CalibrationTable(text: "1.0\tx\n", source: "c.txt") }
        let table = try CalibrationTable(text: "# note\ncalibrator: minmax\n2.5\tname with: colon\n", source: "c")
        #expect(table.ranges == ["name with: colon": 2.5])
        // Edited on Windows: CRLF line ends.
        let crlf = try CalibrationTable(text: "calibrator: minmax\r\nsamples: 4\r\n1.5\tx\r\n", source: "c")
        #expect(crlf.ranges == ["x": 1.5] && crlf.samples == 4)
        #expect(throws: KilnError.self) {
            try CalibrationTable(text: "calibrator: minmax\nsamples: many\n", source: "c")
        }
    }

    @Test func thePlanKeepsThePrecisionReport() throws {
        var gen = SeededGenerator(seed: seed)
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: Self.batches(2, &gen))
        let engine = try Builder.build(try Self.network(&gen), device: CPUDevice(), config: config)
        let bytes = try engine.plan(options: BuildOptions()).encoded()
        let loaded = try Engine(plan: try EnginePlan(decoding: bytes), device: CPUDevice())
        #expect(loaded.precision == engine.precision && loaded.precision != nil)
        let feeds = Self.batches(1, &gen)[0]
        #expect(try Self.outputs(loaded, feeds) == Self.outputs(engine, feeds))
        #expect(try loaded.plan(options: BuildOptions()).encoded() == bytes)
    }

    @Test func calibratorsPickTheRangesTheyPromise() {
        var gen = SeededGenerator(seed: seed)
        // Laplace-distributed values (scale 1), heavy-tailed like activations: the largest of 50,000 is near
        // ln(50,000) = 10.8, while 99.9% lie below ln(1000) = 6.9.
        let values: [Float] = (0..<50_000).map { _ in
            let magnitude = -log(Float.random(in: Float.leastNormalMagnitude...1, using: &gen))
            return Bool.random(using: &gen) ? magnitude : -magnitude
        }
        let maximum = values.map(abs).max()!
        var histogram = MagnitudeHistogram(maximum: maximum)
        values.withUnsafeBufferPointer { histogram.add($0) }
        #expect(CalibrationMethod.minMax.amax(histogram) == maximum)
        // The percentile is the upper edge of the bin holding the value of rank 99% of the count: that value lies
        // within the bin below it. (The next value up may be bins away: a sample has gaps.)
        let p99 = CalibrationMethod.percentile(99).amax(histogram)
        let sorted = values.map(abs).filter { $0 != 0 }.sorted()
        let exact = sorted[Int((Double(sorted.count) * 0.99).rounded(.up)) - 1]
        let slack = histogram.width * 1e-3
        #expect(
            exact <= p99 + slack && exact >= p99 - histogram.width - slack, "\(p99) vs \(exact), seed \(seed)")
        // Entropy clips at most the rare largest values (99.9% of them lie below 6.9), at the bin edge whose
        // quantization loses the least: no other cut has a smaller divergence. Whether it clips at all depends
        // on the sample: with a few far outliers (a maximum near 13) the widest cut can win.
        let entropy = CalibrationMethod.entropy.amax(histogram)
        #expect(entropy >= 7 && entropy <= maximum, "entropy threshold \(entropy) of \(maximum), seed \(seed)")
        func divergence(_ cut: Int) -> Double {
            var reference = Array(histogram.bins[0..<cut])
            reference[cut - 1] += histogram.bins[cut...].reduce(0, +)
            return MagnitudeHistogram.divergence(reference, Array(histogram.bins[0..<cut]), levels: 128)
        }
        let chosen = divergence(Int((entropy / histogram.width).rounded()))
        for cut in stride(from: 128, through: MagnitudeHistogram.binCount, by: 16) {
            #expect(chosen <= divergence(cut) + 1e-12, "cut \(cut) loses less than \(entropy), seed \(seed)")
        }

        // A few distinct values (pixels): nothing to gain from clipping, so the whole range.
        let pixels = (0..<5_000).map { _ in Float(Int.random(in: 0...16, using: &gen)) / 16 }
        var discrete = MagnitudeHistogram(maximum: 1)
        pixels.withUnsafeBufferPointer { discrete.add($0) }
        #expect(CalibrationMethod.entropy.amax(discrete) >= 0.99)
    }

    @Test func unknownCalibratorsAndPercentilesAreRefused() {
        #expect(throws: KilnError.self) { try CalibrationMethod(name: "kl") }
        #expect(throws: KilnError.self) { try CalibrationMethod(name: "percentile", percentile: 0) }
        #expect(throws: KilnError.self) { try CalibrationMethod(name: "percentile", percentile: 100.5) }
    }
}
