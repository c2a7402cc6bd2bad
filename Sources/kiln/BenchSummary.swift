import Foundation
import KilnIR
import KilnRuntime

/// One timed inference: host wall clock and the device's own split.
struct BenchSample {
    var wall: Double
    var timings: RunTimings
}

/// Order statistics of a list of milliseconds.
struct LatencyStats {
    var min, mean, median, p90, p95, p99, max: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        func at(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[Swift.min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
        }
        min = sorted.first ?? 0
        max = sorted.last ?? 0
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        median = at(0.5)
        p90 = at(0.9)
        p95 = at(0.95)
        p99 = at(0.99)
    }

    var json: [String: Double] {
        ["min": min, "mean": mean, "median": median, "p90": p90, "p95": p95, "p99": p99, "max": max]
    }

    func line(_ label: String) -> String {
        let values = [min, mean, median, p90, p95, p99, max].map { String(format: "%.3f", $0) }
        return "  \(label.padding(toLength: 12, withPad: " ", startingAt: 0))"
            + values.map {
                $0.padding(toLength: 10, withPad: " ", startingAt: 0)
            }.joined()
    }
}

/// What `kiln bench` reports.
struct BenchSummary {
    let model: String
    let device: String
    let batch: Int
    let samples: [BenchSample]
    let wallSeconds: Double
    let mode: String
    /// The engine the device built for these shapes, when it describes one.
    let engine: EngineReport?
    /// Execution contexts run concurrently.
    let streams: Int

    var endToEnd: LatencyStats { LatencyStats(samples.map(\.wall)) }
    var compute: LatencyStats { LatencyStats(samples.map(\.timings.compute)) }
    var upload: LatencyStats { LatencyStats(samples.map(\.timings.upload)) }
    var download: LatencyStats { LatencyStats(samples.map(\.timings.download)) }
    var inferencesPerSecond: Double { Double(samples.count) / wallSeconds }

    func print() {
        Console.line(
            "\(model) on \(device), batch \(batch)\(streams > 1 ? ", \(streams) streams" : ""): \(samples.count) runs in "
                + "\(String(format: "%.2f", wallSeconds)) s")
        Console.line(
            "  throughput  \(String(format: "%.1f", inferencesPerSecond)) inferences/s, "
                + "\(String(format: "%.1f", inferencesPerSecond * Double(batch))) items/s")
        Console.line("  latency ms  min       mean      median    p90       p95       p99       max")
        Console.line(endToEnd.line("end to end"))
        Console.line(upload.line("  upload"))
        Console.line(compute.line("  compute"))
        Console.line(download.line("  download"))
        let stats = endToEnd
        if stats.median > 0, stats.p99 / stats.median > 1.5 {
            Console.line(
                "  warning: large spread (p99 is \(String(format: "%.1f", stats.p99 / stats.median))x the median): "
                    + "the machine may be busy")
        }
    }

    func writeJSON(to path: String, profile: [ProfileRow]) throws {
        let object: [String: Any] = [
            "model": model, "device": device, "batch": batch, "streams": streams, "runs": samples.count,
            "wall_s": wallSeconds,
            "throughput": [
                "inferences_per_s": inferencesPerSecond, "items_per_s": inferencesPerSecond * Double(batch),
            ],
            "latency_ms": [
                "end_to_end": endToEnd.json, "upload": upload.json, "compute": compute.json,
                "download": download.json,
            ],
            "profile": profile.map(\.json),
            "engine": engine?.json ?? NSNull(),
            "results": [
                [
                    "model": model, "batch": batch, "mode": mode, "median_ms": compute.median,
                    // One context: items per second of the computation alone, as the baselines measure it;
                    // several: what they delivered together, end to end.
                    "throughput": streams == 1
                        ? Double(batch) * 1000 / Swift.max(compute.median, 1e-9)
                        : inferencesPerSecond * Double(batch),
                    "median_e2e_ms": endToEnd.median, "device": device,
                ] as [String: Any]
            ],
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw KilnError.io("\(path): cannot write: \(error.localizedDescription)")
        }
    }
}

/// One engine layer's time over several profiling runs.
struct ProfileRow {
    var name: String
    var kind: LayerKind
    var times: [Double]

    var total: Double { times.reduce(0, +) }
    var average: Double { total / Double(max(times.count, 1)) }
    var median: Double { LatencyStats(times).median }

    var json: [String: Any] {
        ["name": name, "kind": kind.name, "total_ms": total, "average_ms": average, "median_ms": median]
    }

    static func measure(context: ExecutionContext, feeds: [String: Value], runs: Int) throws -> [ProfileRow] {
        var rows: [ProfileRow] = []
        for _ in 0..<runs {
            let layers = try context.profile(feeds)
            if rows.isEmpty { rows = layers.map { ProfileRow(name: $0.name, kind: $0.kind, times: []) } }
            for (i, layer) in layers.enumerated() where i < rows.count { rows[i].times.append(layer.milliseconds) }
        }
        return rows
    }

    static func print(_ rows: [ProfileRow]) {
        let all = rows.reduce(0) { $0 + $1.median }
        Console.line("per-layer profile (\(rows.first?.times.count ?? 0) runs; median per run):")
        Console.line("  share   median ms  average ms  total ms   kind                   layer")
        for row in rows.sorted(by: { $0.median > $1.median }) {
            let share = all > 0 ? row.median / all * 100 : 0
            Console.line(
                String(format: "  %5.1f%%  %9.4f  %10.4f  %9.3f  ", share, row.median, row.average, row.total)
                    + row.kind.name.padding(toLength: 22, withPad: " ", startingAt: 0) + " " + row.name)
        }
        Console.line(String(format: "  sum of medians %.3f ms", all))
    }
}

extension EngineReport {
    /// `engine: 176 layers (52 views), 238 kernel launches and library calls per inference; ...`
    var summaryLine: String {
        let views = layers.filter { $0.implementation.hasPrefix("view") || $0.implementation.hasPrefix("no work") }
            .count
        func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
        return "engine: \(layers.count) layers (\(views) views, no work), \(launches) kernel launches and library "
            + "calls per inference; activations \(mib(activationBytes)) planned (\(mib(naiveActivationBytes)) "
            + "one buffer per value), weights \(mib(weightBytes))"
    }

    var json: [String: Any] {
        [
            "layers": layers.count, "launches": launches, "activation_bytes": activationBytes,
            "naive_activation_bytes": naiveActivationBytes, "weight_bytes": weightBytes,
        ]
    }
}
