import KilnIR

/// The layer kinds whose CUDA lowerings take float16 and bfloat16 operands: products and convolutions on
/// tensor cores (cuBLASLt, cuDNN), and Kiln's kernels, which load the 16-bit values, compute in float32 and
/// store 16 bits. Data movement is by element size, so every 2-byte type moves alike.
enum CUDAHalfPrecision {
    static let kinds: Set<LayerKind> = [
        UnaryLayer.kind, ClipLayer.kind, BinaryLayer.kind, VariadicLayer.kind, SelectLayer.kind, CastLayer.kind,
        CastLikeLayer.kind, FusedPointwiseLayer.kind, MatMulLayer.kind, ConvolutionLayer.kind,
        FusedAttentionLayer.kind, AttentionLayer.kind, ReduceLayer.kind, SoftmaxLayer.kind, NormalizationLayer.kind,
        PoolLayer.kind, ReshapeLayer.kind, IdentityLayer.kind, TransposeLayer.kind, SliceLayer.kind,
        ExpandLayer.kind, TileLayer.kind, DepthSpaceLayer.kind, SplitLayer.kind, ConcatLayer.kind, PadLayer.kind,
        GatherLayer.kind, GatherElementsLayer.kind, DropoutLayer.kind,
    ]

    /// float16 everywhere the kernels run (its conversions are PTX of every architecture); bfloat16 from
    /// compute capability 8.0 (Ampere), whose `cvt.rn.bf16.f32` the kernels use.
    static func runs(_ node: Node, dtype: DType, architecture: Int) -> Bool {
        switch dtype {
        case .float16: kinds.contains(node.kind)
        case .bfloat16: architecture >= 80 && kinds.contains(node.kind)
        default: false
        }
    }
}
