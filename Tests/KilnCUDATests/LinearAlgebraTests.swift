import Foundation
import KilnIR
import Testing

@testable import KilnCUDA

/// Lowerings of matMul and convolution (no GPU needed) and an NVRTC compile of the epilogue kernel.
@Suite struct LinearAlgebraTests {
    func info(_ layer: any Layer, _ inputs: [[Int]?], _ output: [Int], tf32: Bool = false) -> CUDANodeInfo {
        let types = inputs.map { shape in shape.map { TensorType(.float32, dims: $0) } }
        let node = Node(
            name: "n", layer: layer, inputs: inputs.indices.map { "i\($0)" }, outputs: ["y"])
        return CUDANodeInfo(
            node: node, inputs: types, outputs: [TensorType(.float32, dims: output)],
            constants: inputs.map { _ in nil }, architecture: 90, options: CUDAOptions(allowTF32: tf32))
    }

    func lower(_ layer: any Layer, _ inputs: [[Int]?], _ output: [Int]) throws -> CUDALowering {
        guard let lowering = CUDALoweringRegistry.all[type(of: layer).kind] else {
            throw KilnError.runtime("no lowering for \(type(of: layer).kind)")
        }
        return try lowering(info(layer, inputs, output))
    }

    func matMul(_ lowering: CUDALowering) -> CUDAMatMul? {
        if case .matMul(let step)? = lowering.steps.first { return step }
        return nil
    }

    func launch(_ lowering: CUDALowering) -> CUDALaunch? {
        if lowering.steps.count > 1, case .launch(let launch) = lowering.steps[1] { return launch }
        return nil
    }

    @Test func plainMatrixProduct() throws {
        let lowering = try lower(MatMulLayer(), [[4, 8], [8, 16]], [4, 16])
        let step = try #require(matMul(lowering))
        #expect(lowering.steps.count == 1)
        #expect((step.m, step.n, step.k, step.batch) == (4, 16, 8, 1))
        #expect(!step.transposeA && !step.transposeB && step.c == nil && step.bias == nil)
        #expect(step.a == .input(0) && step.b == .input(1) && step.d == .output(0))
    }

    @Test func batchedTimesMatrixFoldsIntoRows() throws {
        let step = try #require(matMul(try lower(MatMulLayer(), [[2, 5, 8], [8, 16]], [2, 5, 16])))
        #expect((step.m, step.n, step.k, step.batch) == (10, 16, 8, 1))
    }

    @Test func attentionLikeBatchedProduct() throws {
        let lowering = try lower(MatMulLayer(), [[2, 3, 7, 5], [2, 3, 5, 7]], [2, 3, 7, 7])
        let step = try #require(matMul(lowering))
        #expect((step.m, step.n, step.k, step.batch) == (7, 7, 5, 6))
        #expect((step.strideA, step.strideB, step.strideD) == (35, 35, 49))
    }

    @Test func sharedLeftOperandBroadcasts() throws {
        let step = try #require(matMul(try lower(MatMulLayer(), [[7, 5], [4, 5, 3]], [4, 7, 3])))
        #expect((step.m, step.n, step.k, step.batch, step.strideA, step.strideB) == (7, 3, 5, 4, 0, 15))
    }

    @Test func vectorOperands() throws {
        let left = try #require(matMul(try lower(MatMulLayer(), [[8], [3, 8, 16]], [3, 16])))
        #expect((left.m, left.n, left.k, left.batch, left.strideA, left.strideB) == (1, 16, 8, 3, 0, 128))
        let right = try #require(matMul(try lower(MatMulLayer(), [[3, 4, 8], [8]], [3, 4])))
        #expect((right.m, right.n, right.k, right.batch) == (12, 1, 8, 1))
    }

    @Test func zeroBetaIgnoresC() throws {
        let lowering = try lower(MatMulLayer(beta: 0), [[4, 8], [8, 16], [4, 1]], [4, 16])
        let step = try #require(matMul(lowering))
        #expect(lowering.steps.count == 1 && step.c == nil && step.bias == nil)
    }

    @Test func partialBatchBroadcastIsUnsupported() {
        #expect(throws: KilnError.self) {
            try lower(MatMulLayer(), [[2, 1, 4, 5], [1, 3, 5, 6]], [2, 3, 4, 6])
        }
    }

    @Test func gemmWithTransposedWeightsAndBias() throws {
        let layer = MatMulLayer(transposeB: true, alpha: 0.5, beta: 1)
        let lowering = try lower(layer, [[4, 8], [16, 8], [16]], [4, 16])
        let step = try #require(matMul(lowering))
        #expect(lowering.steps.count == 1)
        #expect((step.m, step.n, step.k) == (4, 16, 8))
        #expect(step.transposeB && !step.transposeA && step.alpha == 0.5)
        #expect(step.bias == .input(2) && step.c == nil)
    }

    @Test func scaledBiasGoesToTheEpilogueKernel() throws {
        let layer = MatMulLayer(transposeB: true, beta: 0.5, epilogue: Epilogue(activation: .gelu(tanh: false)))
        let lowering = try lower(layer, [[4, 8], [16, 8], [1, 16]], [4, 16])
        let step = try #require(matMul(lowering))
        #expect(step.bias == nil && step.c == nil && step.activation == nil)
        let kernel = try #require(launch(lowering))
        #expect(kernel.function == "kiln_linalg_epilogue_f32_gelu_erf")
        #expect(kernel.arguments[3] == .int32(2) && kernel.arguments[4] == .float32(0.5))
        #expect(kernel.arguments[5] == .int64(16))
    }

    @Test func residualMatrixUsesCWithBeta() throws {
        let layer = MatMulLayer(beta: 2, epilogue: Epilogue(activation: .relu))
        let lowering = try lower(layer, [[3, 4, 8], [8, 16], [3, 4, 16]], [3, 4, 16])
        let step = try #require(matMul(lowering))
        #expect(lowering.steps.count == 1)
        #expect(step.c == .input(2) && step.beta == 2 && step.activation == .relu && step.m == 12)
    }

    @Test func columnBiasBroadcastsThroughTheKernel() throws {
        let lowering = try lower(MatMulLayer(), [[4, 8], [8, 16], [4, 1]], [4, 16])
        let kernel = try #require(launch(lowering))
        #expect(kernel.function == "kiln_linalg_epilogue_f32_none")
        #expect(kernel.arguments[3] == .int32(3))
        #expect(kernel.arguments[6] == .dims([4, 16]) && kernel.arguments[7] == .dims([1, 0]))
    }

    @Test func convolutionWithBiasResidualRelu() throws {
        let layer = ConvolutionLayer(
            ConvolutionParameters(pads: [1, 1, 1, 1]), epilogue: Epilogue(residual: true, activation: .relu))
        let lowering = try lower(
            layer, [[2, 8, 10, 10], [16, 8, 3, 3], [16], [2, 16, 10, 10]], [2, 16, 10, 10])
        #expect(lowering.steps.count == 1)
        guard case .convolution(let step)? = lowering.steps.first else {
            Issue.record("expected a convolution step")
            return
        }
        #expect(step.bias == .input(2) && step.residual == .input(3) && step.activation == .relu)
        #expect(step.pads == [1, 1] && step.strides == [1, 1] && step.dilations == [1, 1] && step.groups == 1)
        #expect(step.outputShape == [2, 16, 10, 10])
    }

    /// A 1×1 convolution is a strided-batched product W · X[n]; the residual is C, the bias and ReLU6 one pass.
    @Test func pointwiseConvolutionBecomesAMatMul() throws {
        let layer = ConvolutionLayer(
            ConvolutionParameters(), epilogue: Epilogue(residual: true, activation: .clip(min: 0, max: 6)))
        let lowering = try lower(layer, [[2, 8, 5, 6], [16, 8, 1, 1], [16], [2, 16, 5, 6]], [2, 16, 5, 6])
        let step = try #require(matMul(lowering))
        #expect((step.m, step.n, step.k, step.batch) == (16, 30, 8, 2))
        #expect(step.a == .input(1) && step.b == .input(0) && step.strideA == 0 && step.strideB == 8 * 30)
        #expect(step.c == .input(3) && step.beta == 1 && step.strideC == 16 * 30 && step.strideD == 16 * 30)
        // The bias (per channel, [16, 1, 1] against [2, 16, 5, 6]) and ReLU6 as one pointwise kernel, in place.
        let kernel = try #require(launch(lowering))
        #expect(kernel.function.hasPrefix("kiln_pw_fused_"))
        #expect(kernel.arguments[0] == .pointer(.output(0)) && kernel.arguments[1] == .pointer(.output(0)))
        #expect(kernel.arguments[2] == .pointer(.input(2)))
        #expect(kernel.arguments[3] == .float32(0) && kernel.arguments[4] == .float32(6))
    }

    /// Without a bias, a 1×1 convolution's ReLU is cuBLASLt's epilogue; strided or padded ones stay on cuDNN.
    @Test func pointwiseConvolutionReluAndNonPointwiseCases() throws {
        let relu = ConvolutionLayer(ConvolutionParameters(), epilogue: Epilogue(activation: .relu))
        let lowering = try lower(relu, [[1, 8, 4, 4], [4, 8, 1, 1]], [1, 4, 4, 4])
        #expect(lowering.steps.count == 1)
        #expect(matMul(lowering)?.activation == .relu)
        let strided = ConvolutionLayer(ConvolutionParameters(strides: [2, 2]))
        let other = try lower(strided, [[1, 8, 4, 4], [4, 8, 1, 1]], [1, 4, 2, 2])
        guard case .convolution? = other.steps.first else {
            Issue.record("a strided 1x1 convolution should stay a cuDNN convolution")
            return
        }
    }

    /// A depthwise convolution is one launch of Kiln's kernel with the bias and ReLU6 inside.
    @Test func depthwiseConvolutionWithClipRunsKilnsKernel() throws {
        let layer = ConvolutionLayer(
            ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1], group: 32),
            epilogue: Epilogue(activation: .clip(min: 0, max: 6)))
        let lowering = try lower(layer, [[1, 32, 16, 16], [32, 1, 3, 3], [32]], [1, 32, 8, 8])
        #expect(lowering.steps.count == 1)
        guard case .launch(let kernel)? = lowering.steps.first else {
            Issue.record("expected a kernel launch")
            return
        }
        #expect(kernel.function == "kiln_depthwise_conv2d_f32_act2")
        #expect(kernel.arguments[5] == .dims([1, 32, 16, 16, 8, 8]))
        #expect(kernel.arguments[6] == .dims([3, 3, 2, 2, 1, 1]))
        #expect(kernel.arguments[8] == .int32(1) && kernel.arguments[9] == .int32(0))
        #expect(kernel.arguments[10] == .float32(0) && kernel.arguments[11] == .float32(6))
    }

    /// A patch embedding (kernel = stride, no padding) copies the patches into scratch rows, then one product.
    @Test func patchConvolutionBecomesCopyThenMatMul() throws {
        let layer = ConvolutionLayer(ConvolutionParameters(kernelShape: [16, 16], strides: [16, 16]))
        let lowering = try lower(layer, [[2, 3, 224, 224], [768, 3, 16, 16], [768]], [2, 768, 14, 14])
        #expect(lowering.scratchBytes == [2 * 196 * 768 * 4])
        let products = lowering.steps.compactMap { step -> CUDAMatMul? in
            if case .matMul(let m) = step { return m }
            return nil
        }
        let product = try #require(products.first)
        #expect(products.count == 1 && lowering.steps.count == 3)
        #expect((product.m, product.n, product.k, product.batch) == (768, 196, 768, 2))
        #expect(product.b == .scratch(0) && product.transposeB && product.strideA == 0)
        guard case .launch(let epilogue) = lowering.steps[2] else {
            Issue.record("expected the bias epilogue last")
            return
        }
        #expect(epilogue.function.hasPrefix("kiln_pw_fused_") && epilogue.arguments[2] == .pointer(.input(2)))
    }

    /// A grouped convolution that is not depthwise (two channels per group) stays on cuDNN.
    @Test func groupedConvolutionStaysOnCuDNN() throws {
        let layer = ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1], group: 16))
        let lowering = try lower(layer, [[1, 32, 8, 8], [32, 2, 3, 3]], [1, 32, 8, 8])
        guard case .convolution(let step)? = lowering.steps.first else {
            Issue.record("expected a cuDNN convolution step")
            return
        }
        #expect(step.groups == 16)
    }

    /// cuDNN pads both ends alike: the pixels one end pads beyond the other are copied in first, into scratch
    /// that the convolution then reads.
    @Test func asymmetricPadsArePaddedFirst() throws {
        // Pads (top 2, left 0) before, (bottom 1, right 1) after: 1 and 0 symmetric, then 1 top, 1 right.
        let layer = ConvolutionLayer(ConvolutionParameters(strides: [2, 2], pads: [2, 0, 1, 1]))
        let lowering = try lower(layer, [[1, 4, 16, 16], [8, 4, 3, 3]], [1, 8, 9, 8])
        guard lowering.steps.count == 2, case .launch(let pad) = lowering.steps[0],
            case .convolution(let step) = lowering.steps[1]
        else {
            Issue.record("expected a pad launch and a convolution, got \(lowering.steps)")
            return
        }
        #expect(pad.function.hasPrefix("kiln_pad_constant"))
        #expect(pad.arguments.contains(.dims([0, 0, 1, 0])))
        #expect(step.x == .scratch(0) && step.inputShape == [1, 4, 17, 17] && step.pads == [1, 0])
        #expect(lowering.scratchBytes == [17 * 17 * 4 * 4])
        // SAME_UPPER, 16 -> 8 with a 3x3 kernel and stride 2: 0 pixels before, 1 after.
        let same = ConvolutionLayer(ConvolutionParameters(strides: [2, 2], autoPad: .sameUpper))
        let sameLowering = try lower(same, [[1, 4, 16, 16], [8, 4, 3, 3]], [1, 8, 8, 8])
        #expect(sameLowering.steps.count == 2 && sameLowering.scratchBytes == [17 * 17 * 4 * 4])
    }

    @Test func oneDimensionalConvolutionBecomesTwoDimensional() throws {
        let layer = ConvolutionLayer(ConvolutionParameters(dilations: [2], pads: [2, 2]))
        let lowering = try lower(layer, [[1, 4, 20], [6, 4, 3]], [1, 6, 20])
        guard case .convolution(let step)? = lowering.steps.first else {
            Issue.record("expected a convolution step")
            return
        }
        #expect(step.inputShape == [1, 4, 1, 20] && step.weightShape == [6, 4, 1, 3])
        #expect(step.pads == [0, 2] && step.dilations == [1, 2] && step.outputShape == [1, 6, 1, 20])
    }

    @Test func epilogueAndDepthwiseKernelsCompileForSM90() throws {
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): the epilogue kernels were NOT compile-checked") {
                Issue.record("NVRTC unavailable")
            }
            return
        }
        let dtypes: [DType] = [.float32, .float16, .bfloat16]
        var sources = dtypes.map(CUDALinearAlgebraEpilogue.source) + dtypes.map(CUDADepthwiseConvolution.source)
        // The pointwise epilogues: every activation, with and without a per-channel bias, in each dtype.
        let activations: [EpilogueActivation?] = [
            nil, .relu, .clip(min: 0, max: 6), .clip(min: nil, max: 1), .leakyRelu(alpha: 0.1), .sigmoid, .tanh,
            .gelu(tanh: false), .gelu(tanh: true), .silu,
        ]
        for dtype in dtypes {
            for activation in activations {
                for bias in [nil, (CUDAOperand.input(2), [4, 1, 1])] {
                    if let launch = try CUDALinearAlgebraMatMul.pointwiseEpilogue(
                        activation: activation, bias: bias, shape: [2, 4, 3, 5], dtype: dtype)
                    {
                        sources.append(launch.source)
                    }
                }
            }
        }
        #expect(sources.count == 6 + 3 * 19)
        for source in sources {
            let cubin = try nvrtc.compile(source, architecture: 90)
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(source.name)")
        }
    }
}
