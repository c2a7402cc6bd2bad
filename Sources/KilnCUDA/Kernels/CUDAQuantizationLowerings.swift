import KilnIR

/// `quantize` and `dequantize` with one constant scale (and zero point) for the whole tensor, between a float
/// (float32, or float16 and bfloat16 as a mixed-precision build leaves them) and int8, uint8 or float8e4m3fn
/// (saturating, the default; the zero point of float8 is 0): where
/// `Int8Chaining` starts and ends a chain of int8 convolutions, and what explicitly quantized models leave after
/// Q/DQ folding. The arithmetic is float32 whatever the float's storage: a 16-bit input is quantized only when
/// the layer divides in float32 (`HalfPrecision` says so when it narrows the input). Per-axis and blocked forms
/// are not lowered.
enum CUDAQuantizationLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(QuantizeLayer.self) { layer, info in
            let float = try info.input(0).dtype
            let floatDivision = float == .float32 || layer.precision == .float32
            guard layer.blockSize == 0, CUDAPrelude.computeType(float) == .float32, floatDivision else {
                throw KilnError.unsupported(
                    "CUDA quantizes float32 per tensor only (16-bit floats when the division is float32)")
            }
            let quantized = info.outputs.first?.dtype
            if quantized == .float8e4m3fn, !layer.saturate {
                throw KilnError.unsupported("CUDA quantizes to float8e4m3fn saturating only (saturate=1)")
            }
            return try lower(info, float: float, quantized: quantized, quantizing: true)
        },
        cudaLowering(DequantizeLayer.self) { layer, info in
            guard layer.blockSize == 0, let float = info.outputs.first?.dtype,
                CUDAPrelude.computeType(float) == .float32
            else {
                throw KilnError.unsupported("CUDA dequantizes to float32, float16 or bfloat16 per tensor only")
            }
            return try lower(info, float: float, quantized: try info.input(0).dtype, quantizing: false)
        },
    ]

    /// One pass over the tensor with the scale and zero point as arguments.
    static func lower(_ info: CUDANodeInfo, float: DType, quantized: DType?, quantizing: Bool) throws -> CUDALowering {
        guard let quantized, [.int8, .uint8, .float8e4m3fn].contains(quantized) else {
            throw KilnError.unsupported(
                "CUDA quantizes to int8, uint8 and float8e4m3fn only, not \(quantized?.onnxName ?? "?")")
        }
        guard info.constants.count > 1, let scale = info.constants[1], scale.count == 1 else {
            throw KilnError.unsupported("CUDA '\(info.node.kind)' needs one constant scale for the whole tensor")
        }
        var zeroPoint = 0.0
        // A float8 zero point is 0 by definition (ONNX ignores it).
        if info.hasInput(2), quantized != .float8e4m3fn {
            guard info.constants.count > 2, let zero = info.constants[2], zero.count == 1 else {
                throw KilnError.unsupported("CUDA '\(info.node.kind)' needs one constant zero point")
            }
            zeroPoint = try zero.doubleValues()[0]
        }
        let count = try info.inputShape(0).reduce(1, *)
        if count == 0 { return CUDALowering(steps: []) }
        let q = ActivationQuantization(
            scale: Float(try scale.doubleValues()[0]), zeroPoint: Int(zeroPoint), type: quantized)
        let launch =
            quantizing
            ? CUDAQuantizedProducts.quantize(q, count: count, from: float, into: .output(0))
            : CUDAQuantizedProducts.dequantize(q, count: count, to: float)
        return CUDALowering(steps: [.launch(launch)])
    }
}
