import Foundation
import KilnRuntime

/// A precision report as text (build, inspect).
enum PrecisionText {
    static func lines(_ report: PrecisionReport) -> [String] {
        let floats = report.layers.filter { $0.precision == "float32" }
        let lowered = report.layers.count - floats.count
        var head =
            "precision: \(report.precision), \(lowered) layers in \(report.precision), \(floats.count) kept float32"
        if report.precision == "int8" {
            head +=
                "; calibrator \(report.calibrator) on \(report.calibrationSamples) samples"
                + (report.fromCache ? " (from the calibration cache)" : "")
        }
        var lines = [head]
        if report.outputs.isEmpty {
            lines.append(
                "  accuracy guard: not run (no \(report.precision == "int8" ? "calibration or " : "")validation data)")
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
            lines.append("  moved to float32 by the guard: \(report.movedToFloat.joined(separator: ", "))")
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
