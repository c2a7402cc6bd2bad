import Foundation
import KilnRuntime

/// A precision report as text (build, inspect).
enum PrecisionText {
    static func lines(_ report: PrecisionReport) -> [String] {
        // Layers per precision, the lowest first: "12 layers in int8, 3 in float16, 1 kept float32".
        let order = ["int8", "float16", "bfloat16", "float32"]
        let counts = Dictionary(grouping: report.layers, by: \.precision).mapValues(\.count)
        let parts = order.filter { counts[$0] != nil || $0 == "float32" }.enumerated().map { i, precision in
            let n = counts[precision] ?? 0
            if precision == "float32" { return "\(n) kept float32" }
            return i == 0 ? "\(n) layers in \(precision)" : "\(n) in \(precision)"
        }
        var head = "precision: \(report.precision), " + parts.joined(separator: ", ")
        if report.isInt8 {
            head +=
                "; calibrator \(report.calibrator) on \(report.calibrationSamples) samples"
                + (report.fromCache ? " (from the calibration cache)" : "")
        }
        var lines = [head]
        if report.outputs.isEmpty {
            lines.append(
                "  accuracy guard: not run (no \(report.isInt8 ? "calibration or " : "")validation data)")
        } else {
            let tolerance = report.tolerance.map { String(format: ", tolerance %.3g", $0) } ?? ""
            lines.append("  accuracy guard on \(report.guardSamples) \(report.guardData) samples\(tolerance):")
            for output in report.outputs {
                lines.append(
                    String(
                        format: "    %@: rel. error %.3g, max abs. diff %.3g vs float32", output.name,
                        output.relativeError, output.maxAbsoluteDifference))
            }
        }
        if !report.movedToFloat.isEmpty {
            let to = report.isInt8 ? "out of int8" : "to float32"
            lines.append("  moved \(to) by the guard: \(report.movedToFloat.joined(separator: ", "))")
        }
        for layer in report.layers {
            let error = layer.relativeError.map { String(format: " (rel. error %.3g)", $0) } ?? ""
            let reason = layer.reason.map { ": \($0)" } ?? ""
            let precision = layer.precision.padding(toLength: 8, withPad: " ", startingAt: 0)
            lines.append("  \(precision)\(layer.name)\(error)\(reason)")
        }
        return lines
    }
}
