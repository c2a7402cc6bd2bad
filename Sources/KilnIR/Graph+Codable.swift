import Foundation

// The IR as Codable values, for plan files. Layers encode their typed parameters (synthesized); a node
// records its kind so the decoder can find the layer type in `LayerRegistry`. Decoding checks what it can
// (tensor sizes, known kinds); the graph verifier and type inference check the rest.

extension Tensor: Codable {
    private enum CodingKeys: String, CodingKey { case dtype, shape, data, strings }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let dtype = try c.decode(DType.self, forKey: .dtype)
        let shape = try c.decode([Int].self, forKey: .shape)
        let count = try ShapeAxes.checkedCount(shape)
        if dtype == .string {
            let strings = try c.decode([String].self, forKey: .strings)
            guard strings.count == count else {
                throw KilnError.invalidModel("string tensor \(shape) has \(strings.count) elements")
            }
            self.init(shape: shape, strings: strings)
            return
        }
        let data = try c.decode(Data.self, forKey: .data)
        let tensor = try data.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
        self = tensor
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dtype, forKey: .dtype)
        try c.encode(shape, forKey: .shape)
        if dtype == .string {
            try c.encode(strings, forKey: .strings)
        } else {
            try c.encode(Data(bytes: storage.bytes, count: byteCount), forKey: .data)
        }
    }
}

extension Node: Codable {
    private enum CodingKeys: String, CodingKey { case name, kind, inputs, outputs, layer }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .name)
        let layer = try withErrorContext("node '\(name)'") { try LayerCoding.decode(c, kind: .kind, layer: .layer) }
        self.init(
            name: name, layer: layer, inputs: try c.decode([String].self, forKey: .inputs),
            outputs: try c.decode([String].self, forKey: .outputs))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try LayerCoding.encode(layer, into: &c, kind: .kind, layer: .layer)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(outputs, forKey: .outputs)
    }
}

extension FusedPointwiseLayer.Step {
    private enum CodingKeys: String, CodingKey { case kind, layer, operands }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            layer: try LayerCoding.decode(c, kind: .kind, layer: .layer),
            operands: try c.decode([FusedPointwiseLayer.Operand].self, forKey: .operands))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try LayerCoding.encode(layer, into: &c, kind: .kind, layer: .layer)
        try c.encode(operands, forKey: .operands)
    }
}

/// A layer of any type under two keys: its kind name and its parameters.
public enum LayerCoding {
    public static func encode<Key: CodingKey>(
        _ layer: any Layer, into container: inout KeyedEncodingContainer<Key>, kind: Key, layer key: Key
    ) throws {
        try container.encode(layer.kind.name, forKey: kind)
        try container.encode(layer, forKey: key)
    }

    public static func decode<Key: CodingKey>(
        _ container: KeyedDecodingContainer<Key>, kind: Key, layer key: Key
    ) throws -> any Layer {
        let name = try container.decode(String.self, forKey: kind)
        guard let type = LayerRegistry.byKind[name] else {
            throw KilnError.invalidModel("unknown layer kind '\(name)'")
        }
        return try type.init(from: try container.superDecoder(forKey: key))
    }
}
