import Foundation
import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Whether a CUDA GPU can run these tests here (driver, device and NVRTC); printed once when it cannot.
let gpuUsable: Bool = {
    do {
        _ = try sharedGPU()
        return true
    } catch {
        print("skipped: GPU layer tests need a CUDA GPU, its driver and NVRTC: \(error)")
        return false
    }
}()

/// One CUDA device for every GPU test in the process.
func sharedGPU() throws -> CUDADevice {
    try GPUHolder.device.get()
}

private enum GPUHolder {
    static let device = Result { try CUDADevice() }
}

/// One input of a case: random floats in a range, random integers, random booleans, or a given tensor.
enum InputSpec {
    case float([Int], ClosedRange<Float> = -1...1)
    case int64([Int], ClosedRange<Int64>)
    /// Int8 weights in [-127, 127].
    case int8([Int])
    case bool([Int])
    case tensor(Tensor)
    /// A weight: an initializer of the graph, not an input.
    case constant(Tensor)
    case none

    func make(_ rng: inout SeededGenerator) -> Tensor? {
        switch self {
        case .float(let shape, let range): .random(shape, in: range, using: &rng)
        case .int64(let shape, let range): .randomIntegers(Int64.self, shape, in: range, using: &rng)
        case .int8(let shape): .randomIntegers(Int8.self, shape, in: -127...127, using: &rng)
        case .bool(let shape):
            Tensor(shape: shape, scalars: (0..<Tensor.elementCount(shape)).map { _ in Bool.random(using: &rng) })
        case .tensor(let t), .constant(let t): t
        case .none: nil
        }
    }
}

/// A layer run on the GPU and on the CPU reference with the same fresh random inputs.
struct GPUCase: CustomTestStringConvertible, Sendable {
    var name: String
    var layer: any Layer
    var inputs: [InputSpec]
    /// Relative and absolute tolerance; products and convolutions sum in another order than the CPU.
    var rtol: Double = 1e-5
    var atol: Double = 1e-6
    /// float16 or bfloat16: the GPU runs the layer on the float inputs rounded to this type, and the CPU
    /// reference on the same rounded values in float32 (so only the GPU's 16-bit stores differ).
    var dtype: DType = .float32

    var testDescription: String { dtype == .float32 ? name : "\(name) [\(dtype.onnxName)]" }
}

extension InputSpec: @unchecked Sendable {}

/// Every CUDA lowering family against the CPU reference, on fresh random inputs each run (the seed is printed
/// with a failure). Disabled, with the reason printed, where there is no GPU.
@Suite struct LayerGPUTests {
    static let cases: [GPUCase] = {
        var cases: [GPUCase] = []
        func add(_ name: String, _ layer: any Layer, _ inputs: [InputSpec], rtol: Double = 1e-5, atol: Double = 1e-6) {
            cases.append(GPUCase(name: name, layer: layer, inputs: inputs, rtol: rtol, atol: atol))
        }
        for op in [UnaryOp.relu, .sigmoid, .tanh, .erf, .exp, .gelu(tanh: false), .gelu(tanh: true), .abs] {
            add("unary \(op)", UnaryLayer(op), [.float([3, 257], -3...3)], rtol: 1e-5, atol: 1e-6)
        }
        add("unary sqrt", UnaryLayer(.sqrt), [.float([1000], 0.01...4)])
        add("add broadcast", BinaryLayer(.add), [.float([4, 1, 33]), .float([5, 33])])
        add("mul row", BinaryLayer(.mul), [.float([64, 768]), .float([768])])
        add("div", BinaryLayer(.div), [.float([7, 9]), .float([7, 9], 0.5...2)])
        add("pow", BinaryLayer(.pow), [.float([50], 0.1...3), .float([50], -2...2)])
        add("select", SelectLayer(), [.bool([2, 3, 17]), .float([2, 3, 17]), .float([17])])
        add(
            "fused chain: where(x > 0, relu(erf(x * s) + b), x)",
            FusedPointwiseLayer(steps: [
                .init(layer: BinaryLayer(.mul), operands: [.input(0), .input(1)]),
                .init(layer: UnaryLayer(.erf), operands: [.step(0)]),
                .init(layer: BinaryLayer(.add), operands: [.step(1), .input(2)]),
                .init(layer: UnaryLayer(.relu), operands: [.step(2)]),
                .init(layer: BinaryLayer(.greater), operands: [.input(0), .input(3)]),
                .init(layer: SelectLayer(), operands: [.step(4), .step(3), .input(0)]),
            ]),
            [.float([3, 64, 33], -2...2), .float([1]), .float([33]), .float([1])])
        add(
            "fused chain: relu6 as max and min, then a row bias",
            FusedPointwiseLayer(steps: [
                .init(layer: BinaryLayer(.max), operands: [.input(0), .input(1)]),
                .init(layer: BinaryLayer(.min), operands: [.step(0), .input(2)]),
                .init(layer: BinaryLayer(.add), operands: [.step(1), .input(3)]),
            ]),
            [.float([4, 8, 300], -8...8), .float([1]), .float([1], 5...7), .float([300])])
        add(
            "fused chain, flat: gelu by hand",
            FusedPointwiseLayer(steps: [
                .init(layer: UnaryLayer(.erf), operands: [.input(0)]),
                .init(layer: BinaryLayer(.add), operands: [.step(0), .input(1)]),
                .init(layer: BinaryLayer(.mul), operands: [.step(1), .input(0)]),
            ]),
            [.float([4096], -3...3), .float([4096])], rtol: 1e-5, atol: 1e-6)
        add("softmax rows", SoftmaxLayer(variant: .softmax), [.float([6, 200], -8...8)])
        add("softmax long rows", SoftmaxLayer(variant: .softmax), [.float([3, 5000], -8...8)])
        add("logSoftmax inner axis", SoftmaxLayer(variant: .logSoftmax, axis: 1), [.float([2, 7, 5], -4...4)])
        var masked = [Float](repeating: 0.25, count: 4 * 128)
        for i in 128..<256 { masked[i] = -.infinity }
        add(
            "softmax zeroNaN, a fully masked row", SoftmaxLayer(variant: .softmax, zeroNaN: true),
            [.tensor(Tensor(shape: [4, 128], scalars: masked))])
        add(
            "layer norm", NormalizationLayer(method: .layer(axis: -1), epsilon: 1e-12),
            [.float([2, 16, 768]), .float([768]), .float([768])], rtol: 1e-4, atol: 1e-5)
        add(
            "batch norm", NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
            [.float([2, 3, 5, 5]), .float([3]), .float([3]), .float([3]), .float([3], 0.5...2)], rtol: 1e-4,
            atol: 1e-5)
        // Large alpha so the window's sum matters; an odd size (AlexNet's, beta 0.75) and an even one, whose window
        // reaches one channel further after than before, with another beta.
        add(
            "local response norm, size 5", NormalizationLayer(method: .lrn(size: 5, alpha: 0.5, beta: 0.75, bias: 1)),
            [.float([2, 7, 5, 6], -2...2)], rtol: 1e-5, atol: 1e-6)
        add(
            "local response norm, size 4", NormalizationLayer(method: .lrn(size: 4, alpha: 2, beta: 0.6, bias: 2)),
            [.float([1, 6, 3, 9, 2], -2...2)], rtol: 1e-5, atol: 1e-6)
        add("reduce sum", ReduceLayer(op: .sum, axes: [1]), [.float([4, 300, 3])], rtol: 1e-4, atol: 1e-5)
        add("reduce max", ReduceLayer(op: .max, axes: [2], keepDims: false), [.float([4, 3, 77])])
        add("transpose heads", TransposeLayer(perm: [0, 2, 1, 3]), [.float([2, 128, 12, 64])])
        add("transpose last two", TransposeLayer(perm: [0, 2, 1]), [.float([3, 65, 33])])
        add("concat", ConcatLayer(axis: 1), [.float([2, 3, 4]), .float([2, 5, 4])])
        add("gather rows", GatherLayer(axis: 0), [.float([100, 16]), .int64([2, 7], 0...99)])
        add(
            "gather one block by a constant index (a view)", GatherLayer(axis: 0),
            [.float([3, 5, 16]), .constant(Tensor(shape: [], scalars: [Int64(-2)]))])
        add(
            "slice with steps",
            SliceLayer(starts: [1, 0], ends: [9, 20], axes: [0, 1], steps: [2, 3], isStatic: true),
            [.float([10, 20])])
        add("expand", ExpandLayer(shape: [3, 4, 5]), [.float([4, 1])])
        add("matMul plain", MatMulLayer(), [.float([37, 65]), .float([65, 19])], rtol: 1e-4, atol: 1e-5)
        add(
            "matMul batched transB", MatMulLayer(transposeB: true), [.float([2, 3, 8, 16]), .float([2, 3, 8, 16])],
            rtol: 1e-4, atol: 1e-5)
        add(
            "matMul bias residual gelu",
            MatMulLayer(epilogue: Epilogue(residual: true, activation: .gelu(tanh: false))),
            [.float([2, 9, 32]), .float([32, 24]), .float([24]), .float([2, 9, 24])], rtol: 1e-4, atol: 1e-5)
        add(
            "matMul alpha and broadcast mask", MatMulLayer(alpha: 0.125),
            [.float([2, 4, 16, 8]), .float([2, 4, 8, 16]), .float([2, 1, 1, 16])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv 3x3 bias relu",
            ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1]), epilogue: .init(activation: .relu)),
            [.float([2, 8, 9, 9]), .float([16, 8, 3, 3]), .float([16])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv 1x1 bias residual relu6",
            ConvolutionLayer(
                ConvolutionParameters(), epilogue: .init(residual: true, activation: .clip(min: 0, max: 6))),
            [.float([2, 24, 7, 9]), .float([40, 24, 1, 1]), .float([40]), .float([2, 40, 7, 9])], rtol: 1e-4,
            atol: 1e-5)
        add(
            "conv 3x3 bias clip (cuDNN, then the pointwise epilogue)",
            ConvolutionLayer(
                ConvolutionParameters(pads: [1, 1, 1, 1]), epilogue: .init(activation: .clip(min: 0, max: 6))),
            [.float([2, 8, 9, 9], -3...3), .float([16, 8, 3, 3]), .float([16])], rtol: 1e-4, atol: 1e-5)
        add(
            "matMul bias silu", MatMulLayer(epilogue: Epilogue(activation: .silu)),
            [.float([5, 40]), .float([40, 24]), .float([24])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv 1x1 relu, no bias", ConvolutionLayer(ConvolutionParameters(), epilogue: .init(activation: .relu)),
            [.float([3, 16, 5, 5]), .float([8, 16, 1, 1])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv depthwise stride 2 clip",
            ConvolutionLayer(
                ConvolutionParameters(strides: [2, 2], pads: [1, 1, 1, 1], group: 8),
                epilogue: .init(activation: .clip(min: 0, max: 6))),
            [.float([2, 8, 10, 10]), .float([8, 1, 3, 3]), .float([8])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv depthwise 3x3 bias residual relu",
            ConvolutionLayer(
                ConvolutionParameters(pads: [1, 1, 1, 1], group: 12),
                epilogue: .init(residual: true, activation: .relu)),
            [.float([3, 12, 13, 11]), .float([12, 1, 3, 3]), .float([12]), .float([3, 12, 13, 11])], rtol: 1e-4,
            atol: 1e-5)
        add(
            "conv depthwise 5x5 dilated, no bias",
            ConvolutionLayer(ConvolutionParameters(dilations: [2, 1], pads: [4, 2, 4, 2], group: 6)),
            [.float([1, 6, 9, 8]), .float([6, 1, 5, 5])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv patches 4x4 stride 4 with bias (patch embedding)",
            ConvolutionLayer(ConvolutionParameters(kernelShape: [4, 4], strides: [4, 4])),
            [.float([2, 3, 17, 16]), .float([10, 3, 4, 4]), .float([10])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv asymmetric pads stride 2 bias relu (padded copy, then cuDNN)",
            ConvolutionLayer(
                ConvolutionParameters(strides: [2, 2], pads: [2, 0, 1, 1]), epilogue: .init(activation: .relu)),
            [.float([2, 4, 11, 10]), .float([6, 4, 3, 3]), .float([6])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv 1-D same-upper stride 2",
            ConvolutionLayer(ConvolutionParameters(strides: [2], autoPad: .sameUpper)),
            [.float([2, 3, 11]), .float([5, 3, 4])], rtol: 1e-4, atol: 1e-5)
        add(
            "conv grouped, 2 channels per group",
            ConvolutionLayer(ConvolutionParameters(pads: [1, 1, 1, 1], group: 4)),
            [.float([2, 8, 6, 6]), .float([8, 2, 3, 3])], rtol: 1e-4, atol: 1e-5)
        add(
            "max pool 3x3 stride 2",
            PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])),
            [.float([2, 4, 11, 11])])
        add(
            "global average pool", PoolLayer(op: .average(countIncludePad: false), window: nil), [.float([2, 5, 7, 7])])
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUReference(_ c: GPUCase) throws {
        try expectGPUMatchesCPU(c)
    }

    /// The fused kernel's source compiles (here, wherever NVRTC is present) and is one launch.
    @Test func fusedChainLowersToOneCompilingKernel() throws {
        let layer = FusedPointwiseLayer(steps: [
            .init(layer: BinaryLayer(.mul), operands: [.input(0), .input(1)]),
            .init(layer: UnaryLayer(.leakyRelu(alpha: 0.1)), operands: [.step(0)]),
            .init(layer: BinaryLayer(.greater), operands: [.step(1), .input(1)]),
            .init(layer: SelectLayer(), operands: [.step(2), .step(1), .input(0)]),
        ])
        let (function, parameters) = try CUDAElementwiseFused.compose(layer, inputs: [.float32, .float32])
        #expect(function.output == .float32 && parameters.count == 1)
        #expect(function.helpers.contains("kiln_step3") && function.body.contains("return t3;"))
        let plan = try PointwiseKernel.plan(function, inputShapes: [[64, 8], [8]], output: [64, 8])
        let launch = try #require(
            try PointwiseKernel.launch(
                function, plan: plan, inputs: [.input(0), .input(1)], output: .output(0), parameters: parameters))
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): the fused kernel was NOT compile-checked") {
                Issue.record("NVRTC unavailable")
            }
            return
        }
        let cubin = try nvrtc.compile(launch.source, architecture: 90)
        #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])
    }

    /// An absurd allocation fails with an out-of-memory error, the process goes on, and device memory returns to
    /// where it was.
    @Test(.enabled(if: gpuUsable)) func outOfMemoryIsAnErrorAndMemoryIsReleased() throws {
        // A device of its own: its count of live memory is this test's alone (other tests run in parallel on
        // the same GPU, so the driver's free memory is not).
        let gpu = try CUDADevice()
        // x [4] expanded to [2^36, 4] floats: 1 TiB of activations, more than any GPU has.
        let graph = Graph(
            name: "oom", inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, dims: [4])))],
            outputs: [GraphValue(name: "y", type: nil)],
            nodes: [
                Node(name: "huge", layer: ExpandLayer(shape: [1 << 36, 4]), inputs: ["x"], outputs: ["e"]),
                Node(
                    name: "sum", layer: ReduceLayer(op: .sum, axes: nil, keepDims: false), inputs: ["e"], outputs: ["y"]
                ),
            ])
        let feeds: [String: Value] = ["x": .tensor(Tensor(shape: [4], scalars: [Float(1), 2, 3, 4]))]
        let small = Graph(
            name: "ok", inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, dims: [4])))],
            outputs: [GraphValue(name: "y", type: nil)],
            nodes: [Node(name: "relu", layer: UnaryLayer(.relu), inputs: ["x"], outputs: ["y"])])
        func runSmall() throws {
            let out = try Builder.build(small, device: gpu, config: BuilderConfig(optimize: false)).makeContext()
                .run(feeds)
            #expect(try out["y"]?.asTensor().scalars(as: Float.self) == [1, 2, 3, 4])
        }
        // Whatever the device keeps once it has run anything (library handles' memory) is there before.
        try runSmall()
        let before = gpu.liveDeviceBytes
        do {
            let engine = try Builder.build(graph, device: gpu, config: BuilderConfig(optimize: false))
            _ = try engine.makeContext().run(feeds)
            Issue.record("a 1 TiB activation arena was allocated")
        } catch {
            let text = "\(error)".lowercased()
            #expect(text.contains("out of device memory"), "\(error)")
        }
        let after = gpu.liveDeviceBytes
        #expect(after <= before, "device memory held: \(before) bytes before, \(after) after")
        // The device still works.
        try runSmall()
    }
}

/// Runs the case's layer on the CPU reference and on the GPU with the same fresh random inputs and records a
/// mismatch (with the seed).
func expectGPUMatchesCPU(_ c: GPUCase) throws {
    let seed = UInt64(Date().timeIntervalSince1970 * 1000) ^ UInt64(truncatingIfNeeded: c.name.hashValue)
    var rng = SeededGenerator(seed: seed)
    let made = c.inputs.map { $0.make(&rng) }
    // In a 16-bit case the GPU reads the rounded values and the CPU the same values widened to float32.
    let half = c.dtype != .float32
    let tensors = try made.map { t in try t.map { half && $0.dtype == .float32 ? try $0.cast(to: c.dtype) : $0 } }
    let widened = try tensors.map { t in try t.map { half && $0.dtype == c.dtype ? try $0.cast(to: .float32) : $0 } }
    var graphInputs: [GraphValue] = []
    var names: [String] = []
    var feeds: [String: Value] = [:]
    var wideFeeds: [String: Value] = [:]
    var initializers: [String: Tensor] = [:]
    var wideInitializers: [String: Tensor] = [:]
    var wideInputs: [GraphValue] = []
    for (i, t) in tensors.enumerated() {
        guard let t else {
            names.append("")
            continue
        }
        names.append("in\(i)")
        let wide = widened[i] ?? t
        if case .constant = c.inputs[i] {
            initializers["in\(i)"] = t
            wideInitializers["in\(i)"] = wide
            continue
        }
        graphInputs.append(GraphValue(name: "in\(i)", type: .tensor(t.type)))
        wideInputs.append(GraphValue(name: "in\(i)", type: .tensor(wide.type)))
        feeds["in\(i)"] = .tensor(t)
        wideFeeds["in\(i)"] = .tensor(wide)
    }
    let graph = Graph(
        name: "case", inputs: graphInputs, outputs: [GraphValue(name: "y", type: nil)], initializers: initializers,
        nodes: [Node(name: c.name, layer: c.layer, inputs: names, outputs: ["y"])])
    var reference = graph
    reference.inputs = wideInputs
    reference.initializers = wideInitializers
    let config = BuilderConfig(optimize: false)
    let expected = try Builder.build(reference, device: CPUDevice(threads: 2), config: config).makeContext()
        .run(wideFeeds)
    let actual = try Builder.build(graph, device: try sharedGPU(), config: config).makeContext().run(feeds)
    let e = try #require(expected["y"])
    var a = try #require(actual["y"])
    if half, let t = try? a.asTensor(), t.dtype == c.dtype {
        #expect(try e.asTensor().dtype == .float32, "\(c.name): the reference is float32")
        a = .tensor(try t.cast(to: .float32))
    } else if half {
        #expect(try a.asTensor().dtype != .float32, "\(c.name): a 16-bit case gave a float32 output")
    }
    let problem = Comparison.mismatch(a, e, rtol: c.rtol, atol: c.atol)
    #expect(problem == nil, "\(c.name) (seed \(seed)): \(problem ?? "")")
}

/// The PTX NVRTC compiles from `source` for Hopper, or nil where NVRTC is missing, which is recorded as a known
/// issue saying that `what` was NOT compile-checked.
func hopperPTX(_ source: CUDASource, _ what: String) throws -> String? {
    guard let nvrtc = try? NVRTC.shared() else {
        withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): \(what) NOT compile-checked") {
            Issue.record("NVRTC missing")
        }
        return nil
    }
    return String(decoding: try nvrtc.compile(source, architecture: 90), as: UTF8.self)
}
