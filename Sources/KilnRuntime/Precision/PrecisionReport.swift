/// What the builder did about precision, saved in the plan (`kiln inspect PLAN`, `--json`): each candidate
/// layer's precision (and why a layer stayed float), how calibration ran, and the accuracy guard's measure of
/// the engine's outputs (and with `perLayer` each int8 layer's output) against the float32 engine.
public struct PrecisionReport: Sendable, Codable, Equatable {
    public struct LayerEntry: Sendable, Codable, Equatable {
        public var name: String
        /// `int8` or `float32`.
        public var precision: String
        /// Why the layer stayed float32; nil for int8 layers.
        public var reason: String?
        /// Relative error of the layer's output against float32 (`perLayer` only).
        public var relativeError: Double?
    }

    public struct OutputError: Sendable, Codable, Equatable {
        public var name: String
        /// ‖engine − float32‖ / ‖float32‖ over all validation samples.
        public var relativeError: Double
        public var maxAbsoluteDifference: Double
    }

    public var precision: String
    public var calibrator: String
    public var calibrationSamples: Int
    /// Whether the ranges came from the calibration cache (no calibration run).
    public var fromCache: Bool
    /// The data the guard measured: `calibration` or `validation`, and how many samples.
    public var guardData: String
    public var guardSamples: Int
    public var tolerance: Double?
    public var layers: [LayerEntry]
    public var outputs: [OutputError]
    /// Layers the guard moved back to float32 to meet the tolerance, most sensitive first.
    public var movedToFloat: [String]

    public var worstRelativeError: Double { outputs.map(\.relativeError).max() ?? 0 }
    public var int8LayerCount: Int { layers.filter { $0.precision == "int8" }.count }
}
