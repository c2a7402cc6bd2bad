import KilnIR

/// The newest ONNX operators (onnx 1.23, opsets 24-28) that no family covers: BitCast, SwiGLU and TensorScatter,
/// each onto one layer. (CumProd, CausalConvWithState, LinearAttention and FlexAttention are the reduction,
/// convolution and attention families'.)
enum NewestImporters {
    static let table: [OperatorImporter] = [
        .layer("BitCast", since: 26) { c in
            let raw = try c.int("to")
            guard let to = DType(rawValue: raw), to.byteSize > 0, !subByte.contains(to) else {
                throw c.unsupported("BitCast to element type \(raw)")
            }
            return BitCastLayer(to: to)
        },
        .layer("SwiGLU", since: 28) { c in
            GatedActivationLayer(gate: .swish, alpha: try c.float("alpha", default: 1))
        },
        .layer("TensorScatter", since: 24) { c in
            let mode = try c.string("mode", default: "linear")
            guard mode == "linear" || mode == "circular" else {
                throw c.unsupported("TensorScatter mode '\(mode)'")
            }
            return TensorScatterLayer(axis: try c.int("axis", default: -2), circular: mode == "circular")
        },
    ]

    /// Element types narrower than a byte, which BitCast cannot reinterpret element by element.
    private static let subByte: Set<DType> = [.int4, .uint4, .int2, .uint2, .float4e2m1]
}
