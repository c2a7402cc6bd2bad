import KilnIR

/// How to build a mixed-precision engine (`BuilderConfig.half`): the 16-bit float, the engine's input and
/// output dtype, and the accuracy guard's data.
public struct HalfConfig: Sendable {
    /// float16 or bfloat16.
    public var dtype: DType
    /// float32 (the default) or `dtype`: the dtype of the engine's float inputs and outputs.
    public var ioType: DType
    /// Batches the accuracy guard compares the engine's outputs on (against float32); nil: no guard.
    public var validation: [[String: Tensor]]?
    /// The largest relative output error the guard accepts; it moves the layers whose own outputs differ most
    /// back to float32 until the engine is within it. nil: measure and report only.
    public var tolerance: Double?
    /// Node names that keep float32.
    public var keepFloat: Set<String>
    /// Hears one line per decision of the guard.
    public var log: (@Sendable (String) -> Void)?

    public init(
        dtype: DType = .float16, ioType: DType = .float32, validation: [[String: Tensor]]? = nil,
        tolerance: Double? = nil, keepFloat: Set<String> = []
    ) {
        self.dtype = dtype
        self.ioType = ioType
        self.validation = validation
        self.tolerance = tolerance
        self.keepFloat = keepFloat
    }
}
