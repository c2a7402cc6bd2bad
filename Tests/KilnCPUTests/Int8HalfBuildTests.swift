import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnRuntime

/// int8 and a 16-bit float in one engine (`--int8 --fp16`): the layers left out of int8 run in 16 bits, the
/// chains start and end with quantize and dequantize layers on 16-bit values, the accuracy guard moves layers
/// out of int8 into 16 bits, and the outputs stay close to float32. On the CPU backend claiming a GPU's kernels
/// (`ClaimingCPU`); the CPU itself has no 16-bit kernels and refuses such a build.
struct Int8HalfBuildTests {
    let seed = SeededGenerator.testSeed()

    /// conv(3->8)+relu, depthwise conv(8), conv 3x3 (or `1x1`) (8->16)+relu, global average pool, flatten,
    /// matMul(16->4)+bias.
    static func network(_ gen: inout SeededGenerator, pointwise: Bool = false) throws -> Graph {
        var n = NetworkBuilder(name: "mixed")
        let x = n.addInput("x", .float32, [.symbol("N"), 3, 8, 8])
        let c1 = try n.relu(
            try n.convolution(
                x, weights: n.addConstant("w1", .random([8, 3, 3, 3], in: -0.5...0.5, using: &gen)),
                bias: n.addConstant("b1", .random([8], using: &gen)), pads: [1, 1, 1, 1]))
        let dw = try n.convolution(
            c1, weights: n.addConstant("wd", .random([8, 1, 3, 3], in: -0.5...0.5, using: &gen)), pads: [1, 1, 1, 1],
            group: 8)
        let c2 = try n.relu(
            try n.convolution(
                dw,
                weights: n.addConstant(
                    "w2", .random(pointwise ? [16, 8, 1, 1] : [16, 8, 3, 3], in: -0.3...0.3, using: &gen)),
                bias: n.addConstant("b2", .random([16], using: &gen)), pads: pointwise ? [] : [1, 1, 1, 1]))
        let pooled = try n.flatten(try n.globalAveragePool(c2))
        let y = try n.matMul(
            pooled, n.addConstant("w3", .random([16, 4], using: &gen)),
            bias: n.addConstant("b3", .random([4], using: &gen)))
        try n.markOutput(y, as: "y")
        return try n.build()
    }

    static func config(_ dtype: DType, _ calibration: [[String: Tensor]], tolerance: Double? = nil) -> BuilderConfig {
        var config = BuilderConfig()
        config.int8 = Int8Config(calibration: calibration, method: .minMax, tolerance: tolerance)
        config.half = HalfConfig(dtype: dtype)
        return config
    }

    @Test(arguments: [DType.float16, .bfloat16])
    func layersOutOfInt8RunIn16Bits(_ dtype: DType) throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let device = ClaimingCPU(halfPrecision: true, int8Chains: true)
        let data = Int8BuildTests.batches(2, &gen)
        let engine = try Builder.build(graph, device: device, config: Self.config(dtype, data))
        let g = engine.graph
        func dtypeOf(_ value: String) -> DType? { g.type(of: value)?.tensorType?.dtype }

        let report = try #require(engine.precision)
        #expect(report.precision == "int8+\(dtype.onnxName)")
        #expect(report.int8LayerCount == 3, "seed \(seed)")
        let depthwise = try #require(report.layers.first { $0.reason?.contains("depthwise") == true })
        #expect(depthwise.precision == dtype.onnxName)

        // The chain starts by quantizing a 16-bit value (dividing in float32) and ends by dequantizing into one;
        // the scales stay float32.
        let quantizes = g.nodes.filter { $0.layer is QuantizeLayer }
        #expect(
            quantizes.contains { dtypeOf($0.inputs[0]) == dtype && ($0.layer as? QuantizeLayer)?.precision == .float32 }
        )
        #expect(quantizes.allSatisfy { g.initializers[$0.inputs[1]]?.dtype == .float32 })
        let dequantizes = g.nodes.filter { $0.layer is DequantizeLayer }
        #expect(dequantizes.contains { dtypeOf($0.outputs[0]) == dtype }, "\(g.nodes.map(\.kind.name))")
        #expect(dequantizes.allSatisfy { g.initializers[$0.inputs[1]]?.dtype == .float32 })
        // The depthwise convolution computes in 16 bits; the unchained int8 matMul reads float32 (a cast feeds
        // it) and the engine's output stays float32.
        let floatConvolutions = g.nodes.filter { $0.kind == ConvolutionLayer.kind }
        #expect(floatConvolutions.count == 1 && floatConvolutions.allSatisfy { dtypeOf($0.inputs[0]) == dtype })
        let product = try #require(g.nodes.first { $0.kind.name == "matMul.int8" })
        #expect(dtypeOf(product.inputs[0]) == .float32)
        #expect(dtypeOf("y") == .float32)
        // The float32 input is quantized as it is, and the int8 product's float32 result is the output as it is:
        // no 16-bit rounding on either side.
        #expect(quantizes.contains { $0.inputs[0] == "x" })
        #expect(!g.nodes.contains { $0.layer is CastLayer && ($0.inputs[0] == "x" || $0.outputs[0] == "y") })

        let fresh = Int8BuildTests.batches(1, &gen)[0]
        let reference = try Int8BuildTests.outputs(try Builder.build(graph, device: CPUDevice()), fresh)
        let error = Int8BuildTests.relativeError(try Int8BuildTests.outputs(engine, fresh), reference)
        #expect(error < 0.05, "\(dtype): fresh inputs differ from float32 by \(error), seed \(seed)")
        #expect(report.worstRelativeError < 0.05, "\(dtype): guard measured \(report.worstRelativeError)")
    }

    @Test func theGuardMovesLayersInto16Bits() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let device = ClaimingCPU(halfPrecision: true, int8Chains: true)
        let data = Int8BuildTests.batches(2, &gen)
        let moved = try Builder.build(graph, device: device, config: Self.config(.float16, data, tolerance: 0))
        let report = try #require(moved.precision)
        // No int8 layer meets a zero tolerance: all three move, into float16.
        #expect(report.movedToFloat.count == 3 && report.int8LayerCount == 0, "seed \(seed)")
        for name in report.movedToFloat {
            #expect(report.layers.first { $0.name == name }?.precision == "float16", "\(name)")
        }
        // With every layer moved, the engine is the float16 build of the same graph, value for value.
        var half = BuilderConfig()
        half.half = HalfConfig(dtype: .float16)
        let float16 = try Builder.build(graph, device: device, config: half)
        #expect(try Int8BuildTests.outputs(moved, data[0]) == Int8BuildTests.outputs(float16, data[0]))
    }

    /// A layer the device runs faster in 16 bits stays out of int8 (and is not ranked by the guard).
    @Test func layersFasterIn16BitsStayThere() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let device = ClaimingCPU(halfPrecision: true, int8Chains: true) { $0.layer is MatMulLayer }
        let data = Int8BuildTests.batches(2, &gen)
        let engine = try Builder.build(graph, device: device, config: Self.config(.float16, data))
        let report = try #require(engine.precision)
        #expect(report.int8LayerCount == 2, "seed \(seed)")
        let product = try #require(report.layers.first { $0.reason?.contains("faster in float16") == true })
        #expect(product.precision == "float16")
        #expect(engine.graph.nodes.contains { $0.kind == MatMulLayer.kind })
        #expect(!engine.graph.nodes.contains { $0.kind.name == "matMul.int8" })
        // Only int8 builds with a 16-bit float ask: an int8 build alone quantizes it.
        var int8Only = BuilderConfig()
        int8Only.int8 = Int8Config(calibration: data, method: .minMax)
        #expect(try Builder.build(graph, device: device, config: int8Only).precision?.int8LayerCount == 3)
    }

    /// A chained 1x1 convolution whose input would be quantized from a 16-bit layer's output stays in 16 bits; a
    /// chained 3x3 one there stays int8 (the case above).
    @Test func aPointwiseConvolutionAfter16BitsStaysThere() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen, pointwise: true)
        let device = ClaimingCPU(halfPrecision: true, int8Chains: true)
        let data = Int8BuildTests.batches(2, &gen)
        let engine = try Builder.build(graph, device: device, config: Self.config(.float16, data))
        let report = try #require(engine.precision)
        #expect(report.int8LayerCount == 2, "the stem and the classifier; seed \(seed)")
        let pointwise = try #require(report.layers.first { $0.reason?.contains("quantized from 16 bits") == true })
        #expect(pointwise.precision == "float16")
        let g = engine.graph
        #expect(
            !g.nodes.contains { $0.layer is QuantizeLayer && g.type(of: $0.inputs[0])?.tensorType?.dtype == .float16 })
    }

    @Test func theCPUBackendRefusesIt() throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(&gen)
        let config = Self.config(.float16, Int8BuildTests.batches(1, &gen))
        #expect {
            try Builder.build(graph, device: CPUDevice(), config: config)
        } throws: { error in
            "\(error)".contains("no fast float16 kernels")
        }
    }
}
