// A small convolutional network defined in Swift with NetworkBuilder, built for the best device present,
// saved as a plan, loaded back and run: the whole Kiln API without ONNX or the command line.
//
//   swift run -c release network-example [PLAN_PATH]
import Foundation
import KilnCPU
import KilnCUDA
import KilnIR
import KilnRuntime

/// Seeded weights, so every run builds the same network.
func weights(_ shape: [Int], _ generator: inout SeededGenerator) -> Tensor {
    let count = shape.reduce(1, *)
    let scale = 1 / Float(shape.dropFirst().reduce(1, *)).squareRoot()
    return Tensor(shape: shape, scalars: (0..<count).map { _ in Float(generator.unit() * 2 - 1) * scale })
}

func example() throws {
    var generator = SeededGenerator(seed: 42)

    // 1. Define the network: conv -> relu -> conv -> relu (+ skip) -> global pool -> linear -> softmax.
    var network = NetworkBuilder(name: "small-cnn")
    let image = network.addInput("image", .float32, [.symbol("batch"), 3, 16, 16])
    let w1 = network.addConstant("conv1.w", weights([8, 3, 3, 3], &generator))
    let b1 = network.addConstant("conv1.b", weights([8], &generator))
    let w2 = network.addConstant("conv2.w", weights([8, 8, 3, 3], &generator))
    let fc = network.addConstant("fc.w", weights([8, 10], &generator))
    let fcBias = network.addConstant("fc.b", weights([10], &generator))
    let c1 = try network.relu(try network.convolution(image, weights: w1, bias: b1, pads: [1, 1, 1, 1]))
    let c2 = try network.relu(try network.convolution(c1, weights: w2, pads: [1, 1, 1, 1]))
    let pooled = try network.flatten(try network.globalAveragePool(try network.add(c1, c2)))
    let logits = try network.matMul(pooled, fc, bias: fcBias)
    try network.markOutput(try network.softmax(logits), as: "probabilities")
    let graph = try network.build()

    // 2. Build an engine for the best device present (the optimizer fuses bias, ReLU and the skip add).
    let device: any Device
    do { device = try CUDADevice() } catch { device = CPUDevice() }
    let engine = try Builder.build(graph, device: device)
    print(
        "built '\(graph.name)' for \(device.properties.name): \(graph.nodes.count) layers -> \(engine.graph.nodes.count)"
    )

    // 3. Save it as a plan, compiled for batch 4 now.
    let path = CommandLine.arguments.dropFirst().first ?? NSTemporaryDirectory() + "small-cnn.kiln"
    try engine.prepare(inputShapes: [[4, 3, 16, 16]])
    let options = BuildOptions(shapes: [.init(name: "image", dims: [4, 3, 16, 16])])
    try engine.plan(options: options).encoded().write(to: URL(fileURLWithPath: path))
    print("saved \(path)")

    // 4. Load the plan (no optimizer, no compiler) and run it next to the in-memory engine.
    let loaded = try Engine(
        plan: EnginePlan(contentsOf: URL(fileURLWithPath: path)), device: device)
    let input = Tensor(shape: [4, 3, 16, 16], scalars: (0..<(4 * 3 * 16 * 16)).map { _ in Float(generator.unit()) })
    let fromPlan = try loaded.makeContext().run(["image": .tensor(input)])
    let inMemory = try engine.makeContext().run(["image": .tensor(input)])
    guard case .tensor(let a)? = fromPlan["probabilities"], case .tensor(let b)? = inMemory["probabilities"] else {
        throw KilnError.runtime("no probabilities output")
    }
    let p = a.scalars(as: Float.self)
    for row in 0..<4 {
        let probabilities = p[(row * 10)..<(row * 10 + 10)]
        let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
        print("image \(row): class \(best - row * 10) with p = \(String(format: "%.3f", probabilities[best]))")
    }
    guard p == b.scalars(as: Float.self) else {
        throw KilnError(.verification, "the plan's outputs differ from the engine's")
    }
    print("the loaded plan gives the same outputs as the engine it was saved from")

    // 5. The same network in int8: calibrated on a few batches, with the accuracy guard's report.
    let calibration = (0..<4).map { _ in
        ["image": Tensor(shape: [8, 3, 16, 16], scalars: (0..<(8 * 3 * 16 * 16)).map { _ in Float(generator.unit()) })]
    }
    var config = BuilderConfig()
    config.int8 = Int8Config(calibration: calibration, method: .entropy)
    let int8 = try Builder.build(graph, device: device, config: config)
    guard let report = int8.precision else { throw KilnError.runtime("an int8 engine without a precision report") }
    let worst = String(format: "%.3g", report.worstRelativeError)
    print(
        "int8: \(report.int8LayerCount) of \(report.layers.count) products in int8; probabilities within \(worst) "
            + "(relative) of float32 on the calibration images")
}

do {
    try example()
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
