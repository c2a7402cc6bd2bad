import Foundation
import KilnIR
import Testing

/// Plan files find layer types by kind through `LayerRegistry`; a layer missing there cannot be loaded.
struct LayerRegistryTests {
    /// Every kind declared in the IR's layer files, read from the sources.
    static func declaredKinds() throws -> Set<String> {
        let layers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/KilnIR/Layers")
        let files = try FileManager.default.contentsOfDirectory(at: layers, includingPropertiesForKeys: nil)
        let pattern = try NSRegularExpression(pattern: #"static let kind = LayerKind\("([^"]+)"\)"#)
        var kinds = Set<String>()
        for file in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                if let range = Range(match.range(at: 1), in: text) { kinds.insert(String(text[range])) }
            }
        }
        return kinds
    }

    @Test func everyDeclaredLayerKindIsRegistered() throws {
        let declared = try Self.declaredKinds()
        #expect(declared.count > 90)
        #expect(declared.subtracting(LayerRegistry.byKind.keys).sorted() == [])
    }

    @Test func registeredKindsAreDistinct() {
        #expect(LayerRegistry.byKind.count == LayerRegistry.types.count)
    }

    @Test func layersRoundTripThroughJSON() throws {
        let layers: [any Layer] = [
            ConvolutionLayer(ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1], group: 2)),
            UnaryLayer(.relu),
            EinsumLayer(equation: try EinsumEquation(parsing: "bij,bjk->bik")),
            ConstantOfShapeLayer(value: Tensor(shape: [1], scalars: [Float(-Float.infinity)])),
            QuantizedConvolutionLayer(
                ConvolutionParameters(strides: [2, 2]), input: .init(scale: 0.5), output: .init(scale: 0.25),
                writesQuantized: true, channelsLast: true, channelsFirstInput: true),
            PoolLayer(
                op: .average(countIncludePad: false), window: nil, channelsLast: true,
                dequantizing: .init(input: .init(scale: 0.5), output: .float16)),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        for layer in layers {
            let node = Node(name: "n", layer: layer, inputs: ["a", ""], outputs: ["b"])
            let data = try encoder.encode(node)
            let back = try decoder.decode(Node.self, from: data)
            #expect(back.kind == node.kind)
            #expect(back.description == node.description)
            #expect(try encoder.encode(back) == data)
        }
    }

    /// A chained convolution from a plan written before `channelsFirstInput` existed reads it as false.
    @Test func aQuantizedConvolutionWithoutTheNewerFieldDecodes() throws {
        let layer = QuantizedConvolutionLayer(
            ConvolutionParameters(), input: .init(scale: 0.5), output: .init(scale: 0.25), writesQuantized: true,
            channelsLast: true, channelsFirstInput: true)
        var object = try #require(
            try JSONSerialization.jsonObject(with: try JSONEncoder().encode(layer)) as? [String: Any])
        #expect(object.removeValue(forKey: "channelsFirstInput") != nil)
        let older = try JSONDecoder().decode(
            QuantizedConvolutionLayer.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(!older.channelsFirstInput && older.channelsLast && older.writesQuantized)
    }

    @Test func unknownKindIsAnError() throws {
        let json = Data(#"{"name":"n","kind":"no.such.layer","layer":{},"inputs":[],"outputs":[]}"#.utf8)
        #expect(throws: KilnError.self) { try JSONDecoder().decode(Node.self, from: json) }
    }
}
