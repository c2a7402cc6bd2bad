import KilnIR

/// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul, QLinearConv.
enum QuantizationImporters {
    static let table: [OperatorImporter] = [
        .layer("QuantizeLinear", since: 10) { c in
            // A given zero point's type decides the output's; recorded so the layer says what it makes.
            let output = try dtype(c, "output_dtype") ?? c.inputType(2)?.tensorType?.dtype
            return QuantizeLayer(
                axis: try c.int("axis", default: 1), blockSize: try c.int("block_size", default: 0),
                outputType: output ?? .uint8, saturate: try c.int("saturate", default: 1) != 0,
                precision: try dtype(c, "precision"))
        },
        .layer("DequantizeLinear", since: 10) { c in
            DequantizeLayer(
                axis: try c.int("axis", default: 1), blockSize: try c.int("block_size", default: 0),
                outputType: try dtype(c, "output_dtype"))
        },
        .layer("DynamicQuantizeLinear", since: 11) { _ in DynamicQuantizeLayer() },
        .layer("QLinearMatMul", since: 10) { _ in QLinearMatMulLayer() },
        .layer("QLinearConv", since: 10) { c in
            QLinearConvLayer(
                strides: try c.ints("strides", default: []), dilations: try c.ints("dilations", default: []),
                pads: try c.ints("pads", default: []), group: try c.int("group", default: 1),
                autoPad: try c.string("auto_pad", default: "NOTSET"))
        },
    ]

    /// A dtype attribute; 0 or absent means "not given".
    private static func dtype(_ c: ImportContext, _ name: String) throws -> DType? {
        let raw = try c.int(name, default: 0)
        guard raw != 0 else { return nil }
        guard let dtype = DType(rawValue: raw) else { throw c.invalid("attribute '\(name)' has unknown type \(raw)") }
        return dtype
    }
}
