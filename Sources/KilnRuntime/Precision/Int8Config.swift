import Foundation
import KilnIR

/// How to build an int8 engine (`BuilderConfig.int8`): the calibration data and calibrator, the calibration
/// cache, and the accuracy guard.
public struct Int8Config: Sendable {
    /// Batches of inputs (input name -> tensor) the ranges are measured on; may be empty when the cache covers
    /// the model.
    public var calibration: [[String: Tensor]]
    /// Batches the accuracy guard measures on; nil: the calibration batches.
    public var validation: [[String: Tensor]]?
    public var method: CalibrationMethod
    /// A calibration cache: read when it covers the model with this calibrator, else written after calibrating.
    public var cache: URL?
    /// The largest relative output error (against float32) the guard accepts; it moves the most sensitive
    /// layers back to float32 until the engine is within it. nil: measure and report only.
    public var tolerance: Double?
    /// Also measure each int8 layer's own output against float32.
    public var perLayer: Bool
    /// Hears progress: (stage, done, total).
    public var progress: (@Sendable (_ stage: String, _ done: Int, _ total: Int) -> Void)?
    /// Hears one line per decision (cache used, layers moved).
    public var log: (@Sendable (String) -> Void)?

    public init(
        calibration: [[String: Tensor]], validation: [[String: Tensor]]? = nil, method: CalibrationMethod = .entropy,
        cache: URL? = nil, tolerance: Double? = nil, perLayer: Bool = false
    ) {
        self.calibration = calibration
        self.validation = validation
        self.method = method
        self.cache = cache
        self.tolerance = tolerance
        self.perLayer = perLayer
    }
}
