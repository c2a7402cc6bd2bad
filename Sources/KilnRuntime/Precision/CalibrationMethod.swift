import Foundation
import KilnIR

/// How calibration turns the magnitudes an activation took into the range int8 covers (`amax`):
/// - `entropy`: the threshold whose 128-level quantization loses the least information, measured as the KL
///   divergence between the clipped histogram and its quantized version (2048 bins; TensorRT's default rule);
/// - `minMax`: the largest magnitude seen (no clipping);
/// - `percentile(p)`: the magnitude below which `p` percent of the values lie.
public enum CalibrationMethod: Sendable, Hashable, CustomStringConvertible {
    case entropy
    case minMax
    case percentile(Double)

    public var description: String {
        switch self {
        case .entropy: "entropy"
        case .minMax: "minmax"
        case .percentile(let p): "percentile \(p)"
        }
    }

    /// Parses `entropy`, `minmax` or `percentile` (with `percentile` giving p).
    public init(name: String, percentile: Double = 99.99) throws {
        switch name.lowercased() {
        case "entropy": self = .entropy
        case "minmax": self = .minMax
        case "percentile":
            guard percentile > 0, percentile <= 100 else {
                throw KilnError.invalidArgument("--percentile \(percentile) is not in (0, 100]")
            }
            self = .percentile(percentile)
        default:
            throw KilnError.invalidArgument("no calibrator '\(name)'; the calibrators are entropy, minmax, percentile")
        }
    }

    /// Whether the method reads the histogram (the second calibration pass) or only the largest magnitude.
    var needsHistogram: Bool { self != .minMax }

    /// The calibrated `amax` for one activation.
    func amax(_ histogram: MagnitudeHistogram) -> Float {
        guard histogram.maximum > 0, histogram.total > 0 else { return histogram.maximum }
        switch self {
        case .minMax: return histogram.maximum
        case .percentile(let p): return histogram.percentile(p)
        case .entropy:
            // A sparse histogram (a few values in 2048 bins) makes every cut look lossless and the search clip
            // far too much; with too few values the largest magnitude is the honest range.
            return histogram.total < Self.entropyMinimumValues ? histogram.maximum : histogram.entropyThreshold()
        }
    }

    /// The fewest non-zero values the entropy calibrator measures a histogram on (two per bin).
    static let entropyMinimumValues = 2.0 * Double(MagnitudeHistogram.binCount)
}

/// Counts of |x| over `[0, maximum]` in equal bins.
struct MagnitudeHistogram: Sendable {
    static let binCount = 2048
    let maximum: Float
    var bins: [Double]

    init(maximum: Float) {
        self.maximum = maximum
        bins = [Double](repeating: 0, count: Self.binCount)
    }

    var total: Double { bins.reduce(0, +) }
    var width: Float { maximum / Float(Self.binCount) }

    /// Exact zeros are not counted: every scale represents them exactly, and after a ReLU their spike would
    /// outweigh the shape of the rest of the distribution.
    mutating func add(_ values: UnsafeBufferPointer<Float>) {
        guard maximum > 0 else { return }
        // In Double: for a tiny maximum, binCount / maximum overflows Float.
        let perUnit = Double(Self.binCount) / Double(maximum)
        for value in values where value.isFinite && value != 0 {
            bins[min(Int(Double(abs(value)) * perUnit), Self.binCount - 1)] += 1
        }
    }

    func percentile(_ p: Double) -> Float {
        let target = total * p / 100
        var sum = 0.0
        for (index, count) in bins.enumerated() {
            sum += count
            if sum >= target { return Float(index + 1) * width }
        }
        return maximum
    }

    /// The threshold (a bin edge) minimizing KL(P || Q), where P is the histogram cut at the threshold
    /// with the clipped values added to its last bin and Q is P quantized to 128 levels and expanded back.
    /// Ties go to the wider threshold: on data with a few distinct values (image pixels) every cut at one of
    /// them loses nothing by this measure, and clipping less is then the safe choice.
    func entropyThreshold() -> Float {
        let levels = 128
        var best = (divergence: Double.infinity, bins: Self.binCount)
        var tail = bins[levels...].reduce(0, +)
        for cut in levels...Self.binCount {
            // tail: the counts at and above `cut`.
            if cut > levels { tail -= bins[cut - 1] }
            var reference = Array(bins[0..<cut])
            reference[cut - 1] += tail
            let divergence = Self.divergence(reference, Array(bins[0..<cut]), levels: levels)
            if divergence <= best.divergence + 1e-12 { best = (min(divergence, best.divergence), cut) }
        }
        guard best.divergence.isFinite else { return maximum }
        return Float(best.bins) * width
    }

    /// KL(P || Q) with Q the `levels`-level quantization of `unclipped`, each level spread evenly over its bins
    /// where P is non-zero. Infinite where P has mass Q lacks.
    static func divergence(_ reference: [Double], _ unclipped: [Double], levels: Int) -> Double {
        let count = reference.count
        var candidate = [Double](repeating: 0, count: count)
        for level in 0..<levels {
            let start = level * count / levels
            let end = (level + 1) * count / levels
            var sum = 0.0
            var nonZero = 0
            for j in start..<end {
                sum += unclipped[j]
                if reference[j] > 0 { nonZero += 1 }
            }
            guard nonZero > 0 else { continue }
            for j in start..<end where reference[j] > 0 { candidate[j] = sum / Double(nonZero) }
        }
        let p = reference.reduce(0, +)
        let q = candidate.reduce(0, +)
        guard p > 0, q > 0 else { return .infinity }
        var divergence = 0.0
        for j in 0..<count where reference[j] > 0 {
            guard candidate[j] > 0 else { return .infinity }
            let pj = reference[j] / p
            divergence += pj * log(pj / (candidate[j] / q))
        }
        return divergence
    }
}
