import KilnIR

/// Lowerings of the LinearAlgebra family: matrix products on cuBLASLt, convolutions on cuDNN, each followed by
/// Kiln's epilogue kernel where the library cannot apply the layer's epilogue exactly; fused attention on Kiln's
/// own kernel.
enum CUDALinearAlgebraLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(MatMulLayer.self) { layer, info in try CUDALinearAlgebraMatMul.lower(layer, info) },
        cudaLowering(ConvolutionLayer.self) { layer, info in try CUDAConvolutionLowering.lower(layer, info) },
        cudaLowering(FusedAttentionLayer.self) { layer, info in try CUDAAttention.lower(layer, info) },
        cudaLowering(AttentionLayer.self) { layer, info in try CUDAAttention.lower(layer, info) },
        cudaLowering(QuantizedConvolutionLayer.self) { layer, info in
            try CUDAQuantizedProducts.lowerConvolution(layer, info)
        },
        cudaLowering(QuantizedMatMulLayer.self) { layer, info in try CUDAQuantizedProducts.lowerMatMul(layer, info) },
    ]
}
