import Foundation
import KilnONNX

/// Builds small ONNX models in memory for importer tests.
enum ModelFactory {
    static func value(_ name: String, _ elementType: Int32 = 1, _ dims: [Int64]) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = elementType
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = d
            return dim
        }
        tensorType.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensorType
        info.type = type
        return info
    }

    static func node(
        _ op: String, _ inputs: [String], _ outputs: [String], name: String = "", domain: String = ""
    )
        -> Onnx_NodeProto
    {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.name = name
        n.domain = domain
        return n
    }

    static func model(
        nodes: [Onnx_NodeProto], inputs: [Onnx_ValueInfoProto], outputs: [Onnx_ValueInfoProto],
        initializers: [Onnx_TensorProto] = [], opset: Int64 = 17, extraOpsets: [(String, Int64)] = []
    ) -> Onnx_ModelProto {
        var graph = Onnx_GraphProto()
        graph.name = "test"
        graph.node = nodes
        graph.input = inputs
        graph.output = outputs
        graph.initializer = initializers
        var model = Onnx_ModelProto()
        model.irVersion = 8
        model.graph = graph
        var ops = Onnx_OperatorSetIdProto()
        ops.version = opset
        model.opsetImport = [ops]
        for (domain, version) in extraOpsets {
            var o = Onnx_OperatorSetIdProto()
            o.domain = domain
            o.version = version
            model.opsetImport.append(o)
        }
        return model
    }

    /// x -> Identity -> y, the smallest valid model.
    static func identity(opset: Int64 = 17) -> Onnx_ModelProto {
        model(
            nodes: [node("Identity", ["x"], ["y"], name: "id")],
            inputs: [value("x", 1, [2, 3])], outputs: [value("y", 1, [2, 3])], opset: opset)
    }

    static func bytes(_ model: Onnx_ModelProto) throws -> Data { try model.serializedData() }
}
