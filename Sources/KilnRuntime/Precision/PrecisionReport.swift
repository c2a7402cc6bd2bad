/// What the builder did about precision, saved in the plan (`kiln inspect PLAN`, `--json`): each candidate
/// layer's precision (and why a layer stayed float), how calibration ran, and the accuracy guard's measure of
/// the engine's outputs (and with `perLayer` each int8 layer's output) against the float32 engine.
public struct PrecisionReport: Sendable, Codable, Equatable {
    public struct LayerEntry: Sendable, Codable, Equatable {
        public var name: String
        /// `int8`, `float16`, `bfloat16` or `float32`.
        public var precision: String
        /// Why the layer is not in the build's lowest precision (not int8 in an int8 build, float32 in a 16-bit
        /// one); nil for layers in it.
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
    /// Layers the guard moved to higher precision to meet the tolerance (out of int8, to the build's 16-bit
    /// float if it has one; from 16 bits to float32), most sensitive first.
    public var movedToFloat: [String]

    public var worstRelativeError: Double { outputs.map(\.relativeError).max() ?? 0 }
    public var int8LayerCount: Int { layers.filter { $0.precision == "int8" }.count }
    /// An int8 build (`int8`, or `int8+float16` / `int8+bfloat16` with the other layers in 16 bits).
    public var isInt8: Bool { precision.hasPrefix("int8") }
}
