/// Passes its input through unchanged (ONNX Identity, Dropout at inference, Optional pass-throughs).
public struct IdentityLayer: Layer {
    public static let kind = LayerKind("identity")
    public init() {}
    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] { [inputs.first?.type] }
}
