import KilnIR

/// DFT, STFT, the window functions and MelWeightMatrix.
enum SignalImporters {
    static let table: [OperatorImporter] = [
        // Opset 17 takes the axis as an attribute (default 1); opset 20 as an optional input (default -2).
        .layer("DFT", since: 17) { c in
            let inverse = try c.int("inverse", default: 0) != 0
            let onesided = try c.int("onesided", default: 0) != 0
            if c.version < 20 {
                return DFTLayer(axis: try c.int("axis", default: 1), inverse: inverse, onesided: onesided)
            }
            if !c.hasInput(2) { return DFTLayer(axis: -2, inverse: inverse, onesided: onesided) }
            if let axis = c.constant(2) {
                return DFTLayer(axis: try axis.scalarInt(), inverse: inverse, onesided: onesided)
            }
            return DFTLayer(axis: nil, inverse: inverse, onesided: onesided)
        },
        .layer("STFT", since: 17) { c in STFTLayer(onesided: try c.int("onesided", default: 1) != 0) },
        window("HannWindow", .hann),
        window("HammingWindow", .hamming),
        window("BlackmanWindow", .blackman),
        .layer("MelWeightMatrix", since: 17) { c in MelWeightMatrixLayer(dtype: try outputType(c)) },
    ]

    private static func window(_ op: String, _ function: WindowLayer.Function) -> OperatorImporter {
        .layer(op, since: 17) { c in
            WindowLayer(function: function, periodic: try c.int("periodic", default: 1) != 0, dtype: try outputType(c))
        }
    }

    /// The `output_datatype` attribute (default float), which must name a real numeric type.
    static func outputType(_ c: ImportContext) throws -> DType {
        let code = try c.int("output_datatype", default: DType.float32.rawValue)
        guard let dtype = DType(rawValue: code), dtype.scalarType != nil, dtype != .bool else {
            throw c.unsupported("output_datatype \(code) is not a supported numeric type")
        }
        return dtype
    }
}
