import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// convolution.int8 and matMul.int8 on the GPU against the CPU kernels, on fresh random inputs: both quantize
/// with the same rule and accumulate exactly in integers, so they agree to float rounding (the transcendental
/// activations to their own tolerance).
@Suite struct QuantizedGPUTests {
    static let cases: [GPUCase] = {
        var cases: [GPUCase] = []
        func add(_ name: String, _ layer: any Layer, _ inputs: [InputSpec], rtol: Double = 1e-6, atol: Double = 1e-6) {
            cases.append(GPUCase(name: name, layer: layer, inputs: inputs, rtol: rtol, atol: atol))
        }
        let s8 = ActivationQuantization(scale: 0.02)
        let u8 = ActivationQuantization(scale: 0.015, zeroPoint: 120, type: .uint8)
        add(
            "conv int8 3x3 pad 1 relu",
            QuantizedConvolutionLayer(
                ConvolutionParameters(pads: [1, 1, 1, 1]), input: s8, epilogue: .init(activation: .relu)),
            [.float([2, 5, 9, 7], -3...3), .int8([6, 5, 3, 3]), .float([6], 0.001...0.02), .float([6])])
        add(
            "conv int8 uint8 zero point, stride 2, groups, residual, clip, requantized output",
            QuantizedConvolutionLayer(
                ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1], group: 2), input: u8,
                epilogue: .init(residual: true, activation: .clip(min: 0, max: 6)),
                output: ActivationQuantization(scale: 0.05, zeroPoint: 3, type: .uint8)),
            [
                .float([3, 4, 10, 11], -2...2), .int8([8, 2, 3, 3]), .float([8], 0.001...0.02), .float([8]),
                .float([3, 8, 5, 6]),
            ])
        add(
            "conv int8 dilated 5x5, no bias, silu",
            QuantizedConvolutionLayer(
                ConvolutionParameters(dilations: [2, 1], pads: [4, 2, 4, 2]), input: s8,
                epilogue: .init(activation: .silu)),
            [.float([1, 3, 12, 9], -3...3), .int8([4, 3, 5, 5]), .float([4], 0.001...0.02), .none],
            rtol: 1e-5, atol: 1e-6)
        add(
            "matMul int8 with bias, gelu",
            QuantizedMatMulLayer(input: s8, epilogue: .init(activation: .gelu(tanh: false))),
            [.float([3, 17, 40], -3...3), .int8([24, 40]), .float([24], 0.001...0.02), .float([24])],
            rtol: 1e-5, atol: 1e-6)
        add(
            "matMul int8 uint8 residual, requantized output",
            QuantizedMatMulLayer(
                input: u8, epilogue: .init(residual: true), output: ActivationQuantization(scale: 0.03, zeroPoint: -4)),
            [
                .float([33, 64], -2...2), .int8([10, 64]), .float([10], 0.001...0.02), .none, .float([33, 10]),
            ])
        // Constant weights take the cuBLASLt path (patches, int8 tensor-core product, finish); fresh each run.
        var rng = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970 * 1000))
        func weights(_ shape: [Int]) -> InputSpec {
            .constant(.randomIntegers(Int8.self, shape, in: -127...127, using: &rng))
        }
        add(
            "conv int8 on cuBLASLt, 3x3 pad 1, 27-deep patches (padded to 32), relu",
            QuantizedConvolutionLayer(
                ConvolutionParameters(pads: [1, 1, 1, 1]), input: s8, epilogue: .init(activation: .relu)),
            [.float([2, 3, 9, 7], -3...3), weights([6, 3, 3, 3]), .float([6], 0.001...0.02), .float([6])])
        add(
            "conv int8 on cuBLASLt, uint8 zero point, stride 2, 7x7 output (49 pixels), residual, requantized",
            QuantizedConvolutionLayer(
                ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1]), input: u8,
                epilogue: .init(residual: true, activation: .clip(min: 0, max: 6)),
                output: ActivationQuantization(scale: 0.05, zeroPoint: 3, type: .uint8)),
            [
                .float([3, 16, 13, 14], -2...2), weights([32, 16, 3, 3]), .float([32], 0.001...0.02), .float([32]),
                .float([3, 32, 7, 7]),
            ])
        add(
            "conv int8 on cuBLASLt, 1x1, one image, no bias",
            QuantizedConvolutionLayer(ConvolutionParameters(), input: u8),
            [.float([1, 64, 5, 5], -2...2), weights([48, 64, 1, 1]), .float([48], 0.001...0.02), .none])
        add(
            "conv int8 on cuBLASLt, 1x1 stride 1 straight from NHWC (32 channels, 16 pixels), uint8",
            QuantizedConvolutionLayer(ConvolutionParameters(), input: u8, epilogue: .init(activation: .relu)),
            [.float([2, 32, 4, 4], -2...2), weights([24, 32, 1, 1]), .float([24], 0.001...0.02), .float([24])])
        add(
            "conv int8 on cuBLASLt, 40 channels (two transpose tiles), 3x3 dilated",
            QuantizedConvolutionLayer(ConvolutionParameters(dilations: [2, 2], pads: [2, 2, 2, 2]), input: s8),
            [.float([2, 40, 9, 35], -3...3), weights([8, 40, 3, 3]), .float([8], 0.001...0.02), .float([8])])
        add(
            "matMul int8 on cuBLASLt, 10 columns (padded to 12), uint8, residual, requantized",
            QuantizedMatMulLayer(
                input: u8, epilogue: .init(residual: true), output: ActivationQuantization(scale: 0.03, zeroPoint: -4)),
            [.float([33, 70], -2...2), weights([10, 70]), .float([10], 0.001...0.02), .none, .float([33, 10])])
        add(
            "matMul int8 on cuBLASLt, batched rows, bias, relu",
            QuantizedMatMulLayer(input: s8, epilogue: .init(activation: .relu)),
            [.float([4, 9, 128], -3...3), weights([96, 128]), .float([96], 0.001...0.02), .float([96])])
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUKernels(_ c: GPUCase) throws {
        try expectGPUMatchesCPU(c)
    }

    /// Every function the lowering can name exists in the module NVRTC compiles (no GPU needed).
    @Test func theModuleCompilesWithEveryFunction() throws {
        guard let text = try hopperPTX(CUDAQuantizedProducts.source, "the int8 kernels") else { return }
        var names = ["kiln_int8_nhwc", "kiln_int8_patches_nhwc", "kiln_int8_rows"]
        for float in [DType.float32, .float16, .bfloat16] {
            for q in [DType.int8, .uint8] {
                names += ["quantize", "dequantize"].map { CUDAQuantizedProducts.kernelName($0, q, float) }
            }
        }
        for act in 0...8 {
            for q in ["i8", "u8"] { names += ["kiln_conv2d_int8_\(q)_act\(act)", "kiln_matmul_int8_\(q)_act\(act)"] }
            names += ["kiln_int8_finish_conv_act\(act)", "kiln_int8_finish_rows_act\(act)"]
        }
        for name in names { #expect(text.contains(name), "\(name) missing") }
    }
}
