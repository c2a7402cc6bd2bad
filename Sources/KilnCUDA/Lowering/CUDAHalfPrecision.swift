import KilnIR

/// The layer kinds whose CUDA lowerings take float16 and bfloat16 operands: products and convolutions on
/// tensor cores (cuBLASLt, cuDNN), and Kiln's kernels, which load the 16-bit values, compute in float32 and
/// store 16 bits (quantize and dequantize included: the float side of int8 chains in an int8 + 16-bit build).
/// Data movement is by element size, so every 2-byte type moves alike.
enum CUDAHalfPrecision {
    static let kinds: Set<LayerKind> = [
        UnaryLayer.kind, ClipLayer.kind, BinaryLayer.kind, VariadicLayer.kind, SelectLayer.kind, CastLayer.kind,
        CastLikeLayer.kind, FusedPointwiseLayer.kind, MatMulLayer.kind, ConvolutionLayer.kind,
        FusedAttentionLayer.kind, AttentionLayer.kind, ReduceLayer.kind, SoftmaxLayer.kind, NormalizationLayer.kind,
        PoolLayer.kind, ReshapeLayer.kind, IdentityLayer.kind, TransposeLayer.kind, SliceLayer.kind,
        ExpandLayer.kind, TileLayer.kind, DepthSpaceLayer.kind, SplitLayer.kind, ConcatLayer.kind, PadLayer.kind,
        GatherLayer.kind, GatherElementsLayer.kind, DropoutLayer.kind, QuantizeLayer.kind, DequantizeLayer.kind,
    ]

    /// Channels-last pays in 16 bits, where cuDNN's tensor-core convolutions want NHWC and reformat NCHW data
    /// around every call. In float32 (FMA math) it pays for the convolutions that are products over every
    /// pixel (1×1, their bias, residual and ReLU in cuBLASLt's epilogue), grouped and depthwise ones (Kiln's
    /// kernel), stems (at most 4 input channels: as fast either way, and the pooling behind them is faster
    /// channels-last) and pooling, but not for other dense windowed convolutions: cuDNN's strict-FP32
    /// algorithms for those are channels-first (ResNet-50's 3×3 layers at batch 64 measured 2.4x slower NHWC at
    /// stride 1, 1.2x at stride 2), so they stay channels-first between transposes, except those Kiln's own
    /// kernel takes (below). Convolutions and max/average pooling. With TF32 (`tf32`) float32 convolutions run
    /// on tensor cores and are treated like 16-bit ones.
    static func runsChannelsLast(_ node: Node, input: TensorType, architecture: Int, tf32: Bool = false) -> Bool {
        let dtype = input.dtype
        let tensorCores =
            ((dtype == .float16 || dtype == .bfloat16) && runs(node, dtype: dtype, architecture: architecture))
            || (dtype == .float32 && tf32)
        guard tensorCores || dtype == .float32 else { return false }
        switch node.layer {
        case let conv as ConvolutionLayer:
            // Channels-last convolutions pad both ends alike (CUDAConvolutionLowering).
            let p = conv.parameters
            let halfPads = p.pads.count / 2
            let symmetric =
                p.autoPad == .valid
                || (p.autoPad == .explicit && p.pads.prefix(halfPads).elementsEqual(p.pads.suffix(halfPads)))
            let windowless = !p.kernelShape.isEmpty && p.kernelShape.allSatisfy { $0 == 1 }
            let channels = input.shape.flatMap { $0.count == 4 ? $0[1].value : nil }
            let stem = channels.map { $0 <= 4 } ?? false
            // Strided dense convolutions over channels in whole slices of 32 have Kiln's split-TF32 kernel
            // (CUDASplitProduct) as a tactic, channels-last only: on ResNet-50's stride-2 3×3 layers at batch
            // 64 it took 317-421 µs where cuDNN's strict-FP32 algorithms took 459-489 NCHW, 518-580 NHWC (the
            // warpgroup form 241-321). Stride-1 ones stay channels-first even on Hopper: with them channels-last
            // on the warpgroup form, ResNet-50's 13 stride-1 3×3 layers took 4.03 ms at batch 64, against 2.60
            // on cuDNN's channels-first algorithms plus 0.79 for the transposes, and batch 1 went 1.43 -> 1.83 ms.
            let splitKernel =
                p.strides.contains { $0 > 1 }
                && CUDASplitProduct.takes(
                    p, channels: channels, dtype: dtype, allowTF32: tf32, architecture: architecture)
            return symmetric && (tensorCores || windowless || stem || p.group > 1 || splitKernel)
        case let pool as PoolLayer:
            if case .lp = pool.op { return false }
            return true
        default: return false
        }
    }

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
