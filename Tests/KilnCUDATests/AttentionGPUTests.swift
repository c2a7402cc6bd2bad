import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// The fused attention kernel against the CPU reference on fresh random inputs, in the layouts the optimizer
/// produces (packed BERT and sequence-first projections, dense heads, a transposed K), with and without masks,
/// for every head-size tile, and with query and key counts that do not fill the kernel's tiles.
@Suite struct AttentionGPUTests {
    typealias View = FusedAttentionLayer.View

    /// Q, K, V as column blocks of one packed [B, S, 3·H·D] tensor (BERT after horizontal fusion); the result
    /// [B, S, H·D].
    static func packed(batch: Int, seq: Int, heads: Int, head: Int, zeroMaskedRows: Bool = false) -> FusedAttentionLayer
    {
        let e = heads * head
        func view(_ block: Int) -> View { View(offset: block * e, strides: [seq * 3 * e, head, 3 * e, 1]) }
        return FusedAttentionLayer(
            batch: batch, heads: heads, queryLength: seq, keyLength: seq, headSize: head, valueHeadSize: head,
            query: view(0), key: view(1), value: view(2), output: View(strides: [seq * e, head, e, 1]),
            outputShape: [batch, seq, e], scale: 1 / Float(head).squareRoot(), zeroMaskedRows: zeroMaskedRows)
    }

    /// Sequence-first [S, B, 3·H·D] (torch's MultiheadAttention, ViT); the result [S·B, H·D].
    static func sequenceFirst(batch: Int, seq: Int, heads: Int, head: Int) -> FusedAttentionLayer {
        let e = heads * head
        func view(_ block: Int) -> View { View(offset: block * e, strides: [3 * e, head, batch * 3 * e, 1]) }
        return FusedAttentionLayer(
            batch: batch, heads: heads, queryLength: seq, keyLength: seq, headSize: head, valueHeadSize: head,
            query: view(0), key: view(1), value: view(2), output: View(strides: [e, head, batch * e, 1]),
            outputShape: [seq * batch, e], scale: 0.125)
    }

    /// Dense [B, H, S, D] operands (K stored [B, H, D, Sk] when `transposedKey`), any sizes.
    static func dense(
        batch: Int, heads: Int, queries: Int, keys: Int, head: Int, valueHead: Int, transposedKey: Bool = false
    ) -> FusedAttentionLayer {
        let key =
            transposedKey
            ? View(strides: [heads * head * keys, head * keys, 1, keys])
            : View(strides: [heads * keys * head, keys * head, head, 1])
        return FusedAttentionLayer(
            batch: batch, heads: heads, queryLength: queries, keyLength: keys, headSize: head,
            valueHeadSize: valueHead, query: View(strides: [heads * queries * head, queries * head, head, 1]),
            key: key, value: View(strides: [heads * keys * valueHead, keys * valueHead, valueHead, 1]),
            output: View(strides: [heads * queries * valueHead, queries * valueHead, valueHead, 1]),
            outputShape: [batch, heads, queries, valueHead], scale: 0.3)
    }

    /// A [B, 1, 1, S] additive mask: batch b sees its first `visible[b]` keys (0: a fully masked row).
    static func paddingMask(_ visible: [Int], seq: Int) -> Tensor {
        var values = [Float](repeating: -.infinity, count: visible.count * seq)
        for (b, n) in visible.enumerated() { for j in 0..<n { values[b * seq + j] = 0 } }
        return Tensor(shape: [visible.count, 1, 1, seq], scalars: values)
    }

    static let cases: [GPUCase] = {
        var cases: [GPUCase] = []
        func add(_ name: String, _ layer: FusedAttentionLayer, _ inputs: [InputSpec]) {
            cases.append(GPUCase(name: name, layer: layer, inputs: inputs, rtol: 1e-4, atol: 1e-5))
        }
        let bert = packed(batch: 3, seq: 77, heads: 4, head: 64, zeroMaskedRows: true)
        let x: InputSpec = .float([3, 77, 3 * 256], -2...2)
        add(
            "packed BERT heads, padding mask with a fully masked row", bert,
            [x, x, x, .tensor(paddingMask([77, 40, 0], seq: 77))])
        add(
            "packed BERT heads, no mask", packed(batch: 2, seq: 128, heads: 2, head: 64),
            [.float([2, 128, 384], -2...2)] * 3)
        // Masks whose tiles the tensor-core kernel stages in shared memory (strides multiples of 8): one row per
        // batch shared by every query, and a full [Sq, Sk] mask, keys past the last whole tile included.
        add(
            "packed BERT heads, staged padding mask with a fully masked row",
            packed(batch: 3, seq: 128, heads: 2, head: 64, zeroMaskedRows: true),
            [.float([3, 128, 384], -2...2)] * 3 + [.tensor(paddingMask([128, 50, 0], seq: 128))])
        add(
            "dense heads d=64, staged [Sq, Sk] mask",
            dense(batch: 2, heads: 3, queries: 70, keys: 104, head: 64, valueHead: 64),
            [.float([2, 3, 70, 64]), .float([2, 3, 104, 64]), .float([2, 3, 104, 64]), .float([70, 104], -3...3)])
        let vit = sequenceFirst(batch: 3, seq: 197, heads: 2, head: 64)
        add("sequence-first packed (ViT)", vit, [.float([197, 3, 384], -2...2)] * 3)
        add(
            "dense heads d=32, random [Sq, Sk] mask",
            dense(batch: 2, heads: 3, queries: 33, keys: 65, head: 32, valueHead: 32),
            [.float([2, 3, 33, 32]), .float([2, 3, 65, 32]), .float([2, 3, 65, 32]), .float([33, 65], -3...3)])
        add(
            "transposed K, d=40, dv=24 (scalar loads)",
            dense(batch: 2, heads: 2, queries: 70, keys: 31, head: 40, valueHead: 24, transposedKey: true),
            [.float([2, 2, 70, 40]), .float([2, 2, 40, 31]), .float([2, 2, 31, 24])])
        // 2 x 80 heads x 2 tiles of 64 queries fill the GPU: the 64-query blocks (the others take 32).
        add(
            "many heads, 64-query blocks, d=32",
            dense(batch: 2, heads: 80, queries: 100, keys: 90, head: 32, valueHead: 32),
            [.float([2, 80, 100, 32]), .float([2, 80, 90, 32]), .float([2, 80, 90, 32])])
        add(
            "d=80 (128 tile)", dense(batch: 1, heads: 3, queries: 65, keys: 100, head: 80, valueHead: 80),
            [.float([1, 3, 65, 80]), .float([1, 3, 100, 80]), .float([1, 3, 100, 80])])
        add(
            "d=160 (256 tile), one query", dense(batch: 2, heads: 1, queries: 1, keys: 50, head: 160, valueHead: 160),
            [.float([2, 1, 1, 160]), .float([2, 1, 50, 160]), .float([2, 1, 50, 160])])
        add(
            "dense heads d=64, 600 keys (64-key tiles in 16 bits)",
            dense(batch: 1, heads: 2, queries: 70, keys: 600, head: 64, valueHead: 64),
            [.float([1, 2, 70, 64]), .float([1, 2, 600, 64]), .float([1, 2, 600, 64])])
        add(
            "dense heads d=64, 600 keys, padding mask",
            dense(batch: 2, heads: 2, queries: 40, keys: 600, head: 64, valueHead: 64),
            [
                .float([2, 2, 40, 64]), .float([2, 2, 600, 64]), .float([2, 2, 600, 64]),
                .tensor(paddingMask([600, 333], seq: 600)),
            ])
        add(
            "dense heads d=128, keys over two tiles",
            dense(batch: 2, heads: 2, queries: 65, keys: 130, head: 128, valueHead: 128),
            [.float([2, 2, 65, 128]), .float([2, 2, 130, 128]), .float([2, 2, 130, 128])])
        cases.append(
            GPUCase(
                name: "ONNX Attention 4-D d=64, grouped heads, causal", layer: AttentionLayer(isCausal: true),
                inputs: [.float([2, 4, 70, 64]), .float([2, 2, 70, 64]), .float([2, 2, 70, 64])], rtol: 1e-4,
                atol: 1e-5))
        // The ONNX operator on the same kernel: grouped K/V heads, causal, a float [Sq, Sk] mask; 3-D operands.
        cases.append(
            GPUCase(
                name: "ONNX Attention 4-D d=64, 530 keys, grouped heads, causal", layer: AttentionLayer(isCausal: true),
                inputs: [.float([1, 4, 530, 64]), .float([1, 2, 530, 64]), .float([1, 2, 530, 64])], rtol: 1e-4,
                atol: 1e-5))
        cases.append(
            GPUCase(
                name: "ONNX Attention 4-D, grouped heads, causal, mask", layer: AttentionLayer(isCausal: true),
                inputs: [
                    .float([2, 4, 9, 16]), .float([2, 2, 11, 16]), .float([2, 2, 11, 8]), .float([9, 11], -2...2),
                ], rtol: 1e-4, atol: 1e-5))
        cases.append(
            GPUCase(
                name: "ONNX Attention 3-D, 3 heads", layer: AttentionLayer(qNumHeads: 3, kvNumHeads: 3, scale: 0.2),
                inputs: [.float([2, 7, 24]), .float([2, 10, 24]), .float([2, 10, 12])], rtol: 1e-4, atol: 1e-5))
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUReference(_ c: GPUCase) throws {
        try expectGPUMatchesCPU(c)
    }

    /// Every head-size tile of the kernel source compiles (here, wherever NVRTC is present).
    @Test func kernelCompiles() throws {
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): the attention kernel was NOT compile-checked") {
                Issue.record("NVRTC unavailable")
            }
            return
        }
        for dtype in [DType.float32, .float16, .bfloat16] {
            let cubin = try nvrtc.compile(CUDAAttention.source(dtype), architecture: 90)
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(dtype)")
        }
        for dtype in [DType.float16, .bfloat16] {
            let cubin = try nvrtc.compile(CUDAAttentionTensorCore.source(dtype), architecture: 90)
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "tensor-core \(dtype)")
        }
        #expect(CUDAAttention.sharedBytes(64) <= 48 << 10)
        // Masks the tensor-core kernel stages (keys adjacent, other strides multiples of 8) and reads in place.
        #expect(CUDAAttentionTensorCore.maskMode(nil) == 0)
        #expect(CUDAAttentionTensorCore.maskMode([128, 0, 0, 1]) == 2)
        #expect(CUDAAttentionTensorCore.maskMode([0, 0, 104, 1]) == 2)
        #expect(CUDAAttentionTensorCore.maskMode([77, 0, 0, 1]) == 1)
        #expect(CUDAAttentionTensorCore.maskMode([0, 0, 1, 0]) == 1)
        // Dynamic shared memory: four stages of 32 keys of K and V (rows of 64 + 8), plus one shared mask row or
        // one row per query of the block; the blocks per multiprocessor each configuration is budgeted for fit in
        // Hopper's 228 KiB of shared memory (1 KiB of it reserved per block).
        #expect(CUDAAttentionTensorCore.sharedBytes(headSize: 64, keys: 32, stages: 4, maskRows: 0) == 2 * 4 * 64 * 72)
        #expect(
            CUDAAttentionTensorCore.sharedBytes(headSize: 64, keys: 32, stages: 4, maskRows: 64)
                == 2 * 4 * (64 * 72 + 64 * 32))
        for (d, c) in CUDAAttentionTensorCore.entries {
            let bytes = CUDAAttentionTensorCore.sharedBytes(
                headSize: d, keys: c.keys, stages: c.stages, maskRows: 16 * c.warps)
            #expect(c.blocks * (bytes + 1024) <= 228 << 10, "head size \(d), \(c)")
        }
        // Head size 64 takes 64-key tiles from 512 keys on, each in its own kernel of the module.
        #expect(CUDAAttentionTensorCore.configuration(headSize: 64, keyLength: 511).keys == 32)
        #expect(CUDAAttentionTensorCore.configuration(headSize: 64, keyLength: 512).keys == 64)
        #expect(Set(CUDAAttentionTensorCore.entries.map { "\($0.headSize).\($0.configuration.keys)" }).count == 4)
        // Which block size each grid gets.
        let big = try CUDAAttention.lower(
            Self.dense(batch: 2, heads: 80, queries: 100, keys: 90, head: 32, valueHead: 32), Self.info(inputs: 3))
        let small = try CUDAAttention.lower(Self.packed(batch: 1, seq: 128, heads: 12, head: 64), Self.info(inputs: 3))
        guard case .launch(let b)? = big.steps.first, case .launch(let s)? = small.steps.first else {
            Issue.record("attention lowers to one launch")
            return
        }
        #expect(b.function == "kiln_attention_f32_d32_r4" && b.grid.x == 2)
        #expect(s.function == "kiln_attention_f32_d64_r2" && s.grid.x == 4)
    }
}

extension AttentionGPUTests {
    /// Node facts for lowering a layer whose inputs are all float32 (the views carry the rest).
    static func info(inputs: Int) -> CUDANodeInfo {
        CUDANodeInfo(
            node: Node(name: "attention", layer: IdentityLayer(), inputs: [], outputs: []),
            inputs: Array(repeating: TensorType(.float32, dims: [1]), count: inputs),
            outputs: [TensorType(.float32, dims: [1])], constants: Array(repeating: nil, count: inputs),
            architecture: 90, options: CUDAOptions())
    }
}

extension Array where Element == InputSpec {
    static func * (spec: [InputSpec], count: Int) -> [InputSpec] { Array((0..<count).map { _ in spec }.joined()) }
}
