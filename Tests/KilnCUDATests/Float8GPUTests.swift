import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// float8e4m3fn products, quantize and dequantize on the GPU against the CPU kernels, on fresh random inputs.
/// Both round the input to the same E4M3 numbers and multiply them exactly. The direct kernels sum in float32
/// and differ from the CPU by float rounding; the FP8 tensor cores (cuBLASLt) keep fewer bits while they
/// accumulate (measured on an H100: up to 3e-4 relative on these cases), so those cases allow 1e-3. Where an
/// output is rounded to E4M3 again a sum next to a midpoint may round the other way, one step, which those
/// cases allow (their quotients stay below 16, so a step is at most the output scale).
@Suite struct Float8GPUTests {
    static let cases: [GPUCase] = {
        var cases: [GPUCase] = []
        func add(_ name: String, _ layer: any Layer, _ inputs: [InputSpec], rtol: Double = 1e-5, atol: Double = 1e-5) {
            cases.append(GPUCase(name: name, layer: layer, inputs: inputs, rtol: rtol, atol: atol))
        }
        var rng = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970 * 1000))
        func float8(_ shape: [Int], magnitude: Double = 240) -> Tensor {
            let bytes = (0..<shape.reduce(1, *)).map { _ in
                ActivationQuantization.float8.encode(
                    Double.random(in: -magnitude...magnitude, using: &rng), saturate: true)
            }
            return bytes.withUnsafeBytes { try! Tensor(dtype: .float8e4m3fn, shape: shape, rawBytes: $0) }
        }
        let q = ActivationQuantization(scale: 3.0 / 448, type: .float8e4m3fn)
        let output = ActivationQuantization(scale: 0.5, type: .float8e4m3fn)
        let scales = InputSpec.float([48], 0.0001...0.0005)
        // Weights that are inputs take the direct kernels.
        add(
            "conv float8 direct, 3x3 pad 1, relu",
            QuantizedConvolutionLayer(
                ConvolutionParameters(pads: [1, 1, 1, 1]), input: q, epilogue: .init(activation: .relu)),
            [.float([2, 5, 9, 7], -3...3), .tensor(float8([6, 5, 3, 3])), .float([6], 0.0001...0.0005), .float([6])])
        add(
            "conv float8 direct, stride 2, groups, residual, clip, output rounded to float8",
            QuantizedConvolutionLayer(
                ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1], group: 2), input: q,
                epilogue: .init(residual: true, activation: .clip(min: 0, max: 6)), output: output),
            [
                .float([3, 4, 10, 11], -2...2), .tensor(float8([8, 2, 3, 3])), .float([8], 0.001...0.002),
                .float([8]), .float([3, 8, 5, 6]),
            ], atol: 0.5 + 1e-5)
        add(
            "matMul float8 direct, bias, gelu",
            QuantizedMatMulLayer(input: q, epilogue: .init(activation: .gelu(tanh: false))),
            [.float([3, 17, 40], -3...3), .tensor(float8([24, 40])), .float([24], 0.0001...0.0005), .float([24])])
        // Constant weights take cuBLASLt's FP8 product (patches, tensor cores, finish).
        let tensorCores = (rtol: 1e-3, atol: 1e-3)
        add(
            "conv float8 on cuBLASLt, 3x3 pad 1, 27-deep patches (padded to 32), relu",
            QuantizedConvolutionLayer(
                ConvolutionParameters(pads: [1, 1, 1, 1]), input: q, epilogue: .init(activation: .relu)),
            [
                .float([2, 3, 9, 7], -3...3), .constant(float8([6, 3, 3, 3])), .float([6], 0.0001...0.0005),
                .float([6]),
            ], rtol: tensorCores.rtol, atol: tensorCores.atol)
        add(
            "conv float8 on cuBLASLt, stride 2, 7x7 output (49 pixels), residual, output rounded to float8",
            QuantizedConvolutionLayer(
                ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1]), input: q,
                epilogue: .init(residual: true, activation: .clip(min: 0, max: 6)), output: output),
            [
                .float([3, 16, 13, 14], -2...2), .constant(float8([32, 16, 3, 3], magnitude: 30)),
                .float([32], 0.001...0.002), .float([32]), .float([3, 32, 7, 7]),
            ], atol: 0.5 + 1e-5)
        add(
            "conv float8 on cuBLASLt, 1x1 stride 1 straight from NHWC (48 channels, 16 pixels)",
            QuantizedConvolutionLayer(ConvolutionParameters(), input: q, epilogue: .init(activation: .relu)),
            [.float([2, 48, 4, 4], -2...2), .constant(float8([48, 48, 1, 1])), scales, .float([48])],
            rtol: tensorCores.rtol, atol: tensorCores.atol)
        add(
            "matMul float8 on cuBLASLt, 10 columns (padded to 12), residual, output rounded to float8",
            QuantizedMatMulLayer(input: q, epilogue: .init(residual: true), output: output),
            [
                .float([33, 70], -2...2), .constant(float8([10, 70], magnitude: 30)), .float([10], 0.00003...0.00006),
                .none, .float([33, 10]),
            ], atol: 0.5 + 1e-5)
        add(
            "matMul float8 on cuBLASLt, batched rows, bias, relu",
            QuantizedMatMulLayer(input: q, epilogue: .init(activation: .relu)),
            [.float([4, 9, 128], -3...3), .constant(float8([96, 128])), .float([96], 0.0001...0.0005), .float([96])],
            rtol: tensorCores.rtol, atol: tensorCores.atol)
        // Quantize and dequantize: bytes and values exactly, NaN, infinities and out-of-range values included.
        var values = Tensor.random([4, 300], in: -3...3, using: &rng).scalars(as: Float.self)
        values += [.nan, .infinity, -.infinity, 1e9, -1e9, 0, -0, 1e-7]
        let x = Tensor(shape: [values.count], scalars: values)
        let scale = InputSpec.constant(Tensor(shape: [], scalars: [Float(2.5 / 448)]))
        add(
            "quantize to float8", QuantizeLayer(axis: 1, outputType: .float8e4m3fn), [.tensor(x), scale], rtol: 0,
            atol: 0)
        add(
            "dequantize float8", DequantizeLayer(axis: 1),
            [.tensor(float8([5, 77], magnitude: 500)), scale], rtol: 0, atol: 0)
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUKernels(_ c: GPUCase) throws {
        try expectGPUMatchesCPU(c)
    }

    /// Every function the lowerings can name exists in the module NVRTC compiles (no GPU needed).
    @Test func theModuleCompilesWithEveryFunction() throws {
        guard let text = try hopperPTX(CUDAFloat8Products.source, "the float8 kernels") else { return }
        var names = ["kiln_f8_nhwc", "kiln_f8_rows"]
        for float in [DType.float32, .float16, .bfloat16] {
            names += ["quantize", "dequantize"].map { CUDAFloat8Products.kernelName($0, float) }
        }
        for act in 0...8 {
            names += ["finish_conv", "finish_rows"].map { "kiln_f8_\($0)_act\(act)" }
            names += ["kiln_conv2d_f8_act\(act)", "kiln_matmul_f8_act\(act)"]
        }
        for name in names { #expect(text.contains(name), "\(name) missing") }
    }

    /// A device without FP8 tensor cores is refused with the reason, before anything runs.
    @Test func devicesBeforeAdaAreRefused() throws {
        let layer = QuantizedMatMulLayer(input: ActivationQuantization(scale: 0.1, type: .float8e4m3fn))
        let node = Node(name: "mm", layer: layer, inputs: ["a", "b", "s"], outputs: ["y"])
        let info = CUDANodeInfo(
            node: node,
            inputs: [TensorType(.float32, [4, 32]), TensorType(.float8e4m3fn, [8, 32]), TensorType(.float32, [8])],
            outputs: [TensorType(.float32, [4, 8])], constants: [nil, nil, nil], architecture: 80, options: .init())
        #expect {
            _ = try CUDAQuantizedProducts.lowerMatMul(layer, info)
        } throws: { error in
            "\(error)".contains("compute capability 8.9 or later") && "\(error)".contains("8.0")
        }
    }
}
