import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime
import SwiftProtobuf
import Testing

/// Builds a one-node ai.onnx.ml model in memory and imports it, so the attribute conversions (legacy tree
/// layout, class labels) are checked end to end.
private func mlModel(
    _ op: String, inputs: [(String, DType, [Int])], outputs: [String], attributes: [Onnx_AttributeProto]
) throws -> Engine {
    var node = Onnx_NodeProto()
    node.opType = op
    node.domain = "ai.onnx.ml"
    node.input = inputs.map(\.0)
    node.output = outputs
    node.attribute = attributes
    var graph = Onnx_GraphProto()
    graph.name = "ml"
    graph.node = [node]
    graph.input = inputs.map { name, dtype, shape in
        var info = Onnx_ValueInfoProto()
        info.name = name
        var type = Onnx_TypeProto()
        type.tensorType.elemType = Int32(dtype.rawValue)
        type.tensorType.shape.dim = shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = Int64(d)
            return dim
        }
        info.type = type
        return info
    }
    graph.output = outputs.map { name in
        var info = Onnx_ValueInfoProto()
        info.name = name
        return info
    }
    var model = Onnx_ModelProto()
    model.irVersion = 8
    model.graph = graph
    model.opsetImport = [("", 17), ("ai.onnx.ml", 3)].map { domain, version in
        var o = Onnx_OperatorSetIdProto()
        o.domain = domain
        o.version = Int64(version)
        return o
    }
    let imported = try ONNXImporter.load(data: try model.serializedData(), directory: nil)
    return try Builder.build(imported.graph, device: CPUDevice(threads: 1))
}

private func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .ints
    a.ints = v.map { Int64($0) }
    return a
}

private func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .int
    a.i = Int64(v)
    return a
}

private func floats(_ name: String, _ v: [Float]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .floats
    a.floats = v
    return a
}

private func strings(_ name: String, _ v: [String]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .strings
    a.strings = v.map { Data($0.utf8) }
    return a
}

private func string(_ name: String, _ v: String) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .string
    a.s = Data(v.utf8)
    return a
}

@Suite struct MLImporterTests {
    /// Two trees in the legacy layout, node ids deliberately out of order: tree 0 splits x0 <= 0.5 into leaves
    /// 1 (target weight 1) and 2 (2); tree 1 is a single leaf (10). Average aggregation, base value 100.
    private var treeAttributes: [Onnx_AttributeProto] {
        [
            ints("nodes_treeids", [0, 0, 0, 1]), ints("nodes_nodeids", [2, 0, 1, 0]),
            ints("nodes_featureids", [0, 0, 0, 0]), floats("nodes_values", [0, 0.5, 0, 0]),
            strings("nodes_modes", ["LEAF", "BRANCH_LEQ", "LEAF", "LEAF"]),
            ints("nodes_truenodeids", [0, 1, 0, 0]), ints("nodes_falsenodeids", [0, 2, 0, 0]),
        ]
    }

    @Test func legacyTreeRegressor() throws {
        let engine = try mlModel(
            "TreeEnsembleRegressor", inputs: [("X", .float32, [2, 1])], outputs: ["Y"],
            attributes: treeAttributes + [
                ints("target_treeids", [0, 0, 1]), ints("target_nodeids", [1, 2, 0]), ints("target_ids", [0, 0, 0]),
                floats("target_weights", [1, 2, 10]), int("n_targets", 1), string("aggregate_function", "AVERAGE"),
                floats("base_values", [100]),
            ])
        let x = Tensor(shape: [2, 1], scalars: [Float](arrayLiteral: 0, 1))
        let y = try engine.makeContext().run(["X": .tensor(x)])["Y"]?.asTensor()
        #expect(y?.shape == [2, 1])
        #expect(y?.scalars(as: Float.self) == [105.5, 106])
    }

    @Test func legacyTreeClassifierWithStringLabels() throws {
        let engine = try mlModel(
            "TreeEnsembleClassifier", inputs: [("X", .float32, [2, 1])], outputs: ["label", "scores"],
            attributes: treeAttributes + [
                ints("class_treeids", [0, 0, 1]), ints("class_nodeids", [1, 2, 0]), ints("class_ids", [0, 2, 1]),
                floats("class_weights", [5, 5, 1]), strings("classlabels_strings", ["a", "b", "c"]),
            ])
        let x = Tensor(shape: [2, 1], scalars: [Float](arrayLiteral: 0, 1))
        let out = try engine.makeContext().run(["X": .tensor(x)])
        #expect(try out["label"]?.asTensor().strings == ["a", "c"])
        #expect(try out["scores"]?.asTensor().scalars(as: Float.self) == [5, 1, 0, 0, 1, 5])
    }

    @Test func categoryMapperBothDirections() throws {
        let attributes = [strings("cats_strings", ["x", "y"]), ints("cats_int64s", [7, 9])]
        let toInt = try mlModel("CategoryMapper", inputs: [("X", .string, [3])], outputs: ["Y"], attributes: attributes)
        let y = try toInt.makeContext().run(["X": .tensor(Tensor(shape: [3], strings: ["y", "q", "x"]))])["Y"]?
            .asTensor()
        #expect(y?.scalars(as: Int64.self) == [9, -1, 7])
        let toString = try mlModel(
            "CategoryMapper", inputs: [("X", .int64, [2])], outputs: ["Y"], attributes: attributes)
        let z = try toString.makeContext().run(["X": .tensor(Tensor.int64([7, 8]))])["Y"]?.asTensor()
        #expect(z?.strings == ["x", "_Unused"])
    }
}
