import KilnCPU
import KilnIR
import KilnOptimizer
import KilnTestSupport
import Testing

@testable import KilnRuntime

/// `DequantizedPooling`: a per-tensor dequantize read only by a channels-last global average pool folds into
/// the pool, which then reads the quantized values; the reference kernels compute the same averages.
struct DequantizedPoolingTests {
    let seed = SeededGenerator.testSeed()

    /// q (int8 or uint8 `[2, 5, 3, 16]`, channels-last) -> dequantize (scale 0.05, zero point `zeroPoint`, into
    /// `float`) -> global average pool (channels-last) -> y; with `shared`, the dequantized value is an output too.
    static func network(_ type: DType, zeroPoint: Int, float: DType, shared: Bool = false) throws -> Graph {
        var n = NetworkBuilder(name: "tail")
        let q = n.addInput("q", type, [2, 5, 3, 16].map { Dim.value($0) })
        let scale = n.addConstant("scale", Tensor(shape: [], scalars: [Float(0.05)]))
        let zero =
            type == .uint8
            ? n.addConstant("zero", Tensor(shape: [], scalars: [UInt8(zeroPoint)]))
            : n.addConstant("zero", Tensor(shape: [], scalars: [Int8(zeroPoint)]))
        let x = try n.add(DequantizeLayer(outputType: float), [q, scale, zero])[0]
        let y = try n.add(PoolLayer(op: .average(countIncludePad: false), window: nil, channelsLast: true), [x])[0]
        try n.markOutput(y, as: "y")
        if shared { try n.markOutput(x, as: "x") }
        return try n.build()
    }

    static func run(_ graph: Graph, _ q: Tensor) throws -> [Float] {
        let engine = try Engine(graph: graph, device: CPUDevice())
        return try engine.makeContext().run(["q": .tensor(q)])["y"]!.asTensor().cast(to: .float32)
            .scalars(as: Float.self)
    }

    @Test(arguments: [(DType.int8, 0, DType.float32), (.uint8, 128, .float32), (.int8, 0, .float16)])
    func theDequantizeFoldsIntoThePool(_ type: DType, _ zeroPoint: Int, _ float: DType) throws {
        var gen = SeededGenerator(seed: seed)
        let graph = try Self.network(type, zeroPoint: zeroPoint, float: float)
        var folded = graph
        #expect(try DequantizedPooling().apply(&folded) == 1)
        #expect(!folded.nodes.contains { $0.layer is DequantizeLayer }, "\(folded)")
        let node = try #require(folded.nodes.first { $0.layer is PoolLayer })
        let pool = try #require(node.layer as? PoolLayer)
        #expect(pool.dequantizing?.input == ActivationQuantization(scale: 0.05, zeroPoint: zeroPoint, type: type))
        #expect(pool.dequantizing?.output == float && node.inputs == ["q"])
        #expect(folded.type(of: "y")?.tensorType == TensorType(float, [2, 1, 1, 16].map { Dim.value($0) }))
        let codes = (0..<480).map { _ in Int.random(in: 0...255, using: &gen) }
        let q =
            type == .uint8
            ? Tensor(shape: [2, 5, 3, 16], scalars: codes.map { UInt8($0) })
            : Tensor(shape: [2, 5, 3, 16], scalars: codes.map { Int8(truncatingIfNeeded: $0) })
        let got = try Self.run(folded, q)
        // The exact averages of the real numbers the codes stand for; float32 rounds each once or twice, float16
        // (the pool averages in float32, then stores) once more.
        let values = codes.map { Double((type == .uint8 ? $0 : Int(Int8(truncatingIfNeeded: $0))) - zeroPoint) * 0.05 }
        for n in 0..<2 {
            for c in 0..<16 {
                let exact = (0..<15).map { values[(n * 15 + $0) * 16 + c] }.reduce(0, +) / 15
                // float32 sums of values up to 6.4 in magnitude, and float16's rounding of the result.
                let bound = 1e-5 + (float == .float16 ? abs(exact) / 2048 : 0)
                #expect(abs(Double(got[n * 16 + c]) - exact) <= bound, "seed \(seed): \(n), \(c)")
            }
        }
        if float == .float32 { #expect(got == (try Self.run(graph, q)), "the unfused graph, seed \(seed)") }
    }

    @Test func aDequantizedValueSomethingElseReadsStays() throws {
        var graph = try Self.network(.int8, zeroPoint: 0, float: .float32, shared: true)
        #expect(try DequantizedPooling().apply(&graph) == 0)
        #expect(graph.nodes.contains { $0.layer is DequantizeLayer })
    }

    @Test func aWindowedPoolIsNotAGlobalAverage() throws {
        var n = NetworkBuilder(name: "windowed")
        let q = n.addInput("q", .int8, [1, 4, 4, 8].map { Dim.value($0) })
        let scale = n.addConstant("scale", Tensor(shape: [], scalars: [Float(0.05)]))
        let x = try n.add(DequantizeLayer(), [q, scale])[0]
        let window = PoolGeometry(kernel: [2, 2], strides: [2, 2])
        try n.markOutput(
            try n.add(PoolLayer(op: .average(countIncludePad: false), window: window, channelsLast: true), [x])[0])
        var graph = try n.build()
        #expect(try DequantizedPooling().apply(&graph) == 0)
    }
}
