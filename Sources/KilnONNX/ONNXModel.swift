import KilnIR

/// An imported ONNX model: the layer graph plus what `kiln inspect` reports about the file.
public struct ONNXModel: Sendable {
    public var graph: Graph
    public var irVersion: Int
    public var producerName: String
    public var producerVersion: String
    public var domain: String
    public var modelVersion: Int
    public var docString: String
    /// Opset version per domain ("" is ai.onnx).
    public var opsets: [String: Int]
    /// How many nodes of each ONNX operator the main graph and its subgraphs hold (`domain.op` outside ai.onnx).
    public var operatorHistogram: [String: Int]
    public var metadata: [String: String]
}
