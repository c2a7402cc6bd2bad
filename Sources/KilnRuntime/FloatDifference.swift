/// How far one float array is from another: ‖a − b‖ / ‖b‖ and the largest |a − b|, in double precision. A
/// non-finite difference (NaN or infinity anywhere) is infinitely far; against an all-zero `b` the relative
/// error is 0 when `a` is zero too, else infinite. Used where engines are compared with each other (the
/// accuracy guard, tactic checks).
public struct FloatDifference: Sendable, Equatable {
    public var relative: Double
    public var largest: Double

    public init(_ a: [Float], _ b: [Float]) {
        var difference = 0.0
        var norm = 0.0
        var largest = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x) - Double(y)
            difference += d * d
            norm += Double(y) * Double(y)
            largest = max(largest, abs(d))
        }
        guard difference.isFinite else {
            relative = .infinity
            self.largest = .infinity
            return
        }
        relative = norm == 0 ? (difference == 0 ? 0 : .infinity) : (difference / norm).squareRoot()
        self.largest = largest
    }
}
