import Foundation
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

    /// Channels-last pays in 16 bits, where cuDNN's tensor-core convolutions want NHWC and reformat NCHW data
    /// around every call; in float32 (FMA math) NCHW is as fast. Convolutions and max/average pooling.
    static func runsChannelsLast(_ node: Node, dtype: DType, architecture: Int) -> Bool {
        let float32 =
            dtype == .float32 && float32ChannelsLast && (node.layer is ConvolutionLayer || node.layer is PoolLayer)
        guard
            float32
                || ((dtype == .float16 || dtype == .bfloat16) && runs(node, dtype: dtype, architecture: architecture))
        else {
            return false
        }
        switch node.layer {
        case let conv as ConvolutionLayer:
            // Channels-last convolutions pad both ends alike (CUDAConvolutionLowering).
            let p = conv.parameters
            let half = p.pads.count / 2
            return p.autoPad == .valid
                || (p.autoPad == .explicit && p.pads.prefix(half).elementsEqual(p.pads.suffix(half)))
        case let pool as PoolLayer:
            if case .lp = pool.op { return false }
            return true
        default: return false
        }
    }

    /// Experiment: float32 convolutions channels-last too (1x1 ones as products over every pixel).
    static let float32ChannelsLast = ProcessInfo.processInfo.environment["KILN_CUDA_FP32_NHWC"] == "1"

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
