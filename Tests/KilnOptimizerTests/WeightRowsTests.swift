import KilnCPU
import KilnIR
import KilnRuntime
import Testing

@testable import KilnOptimizer

/// `WeightRows`: a matMul's constant `[K, N]` weight stored as `[N, K]` where the device asks, the product
/// then reading it transposed, with the same result; shared weights and other dtypes untouched.
@Suite struct WeightRowsTests {
    static func graph() -> Graph {
        var g = Graph(
            name: "rows", inputs: [GraphValue(name: "x", type: .tensor(TensorType(.float32, dims: [2, 3])))],
            outputs: [GraphValue(name: "y", type: nil), GraphValue(name: "z", type: nil)])
        g.initializers["w"] = Tensor(shape: [3, 2], scalars: [Float(1), 2, 3, 4, 5, 6])
        g.initializers["shared"] = Tensor(shape: [3, 2], scalars: [Float(1), 0, 0, 1, 1, 1])
        g.nodes = [
            Node(name: "mm", layer: MatMulLayer(), inputs: ["x", "w"], outputs: ["y"]),
            Node(name: "a", layer: MatMulLayer(), inputs: ["x", "shared"], outputs: ["s1"]),
            Node(name: "b", layer: MatMulLayer(), inputs: ["x", "shared"], outputs: ["s2"]),
            Node(name: "sum", layer: BinaryLayer(.add), inputs: ["s1", "s2"], outputs: ["z"]),
        ]
        return g
    }

    /// The graph's outputs on the CPU, unoptimized.
    static func run(_ g: Graph) throws -> [[Double]] {
        let engine = try Builder.build(g, device: CPUDevice(threads: 1), config: BuilderConfig(optimize: false))
        let x = Tensor(shape: [2, 3], scalars: [Float(1), -2, 3, 0.5, 4, -1])
        let out = try engine.makeContext().run(["x": .tensor(x)])
        return try ["y", "z"].map { name in
            guard case .tensor(let t)? = out[name] else { throw KilnError.invalidArgument("no \(name)") }
            return try t.doubleValues()
        }
    }

    @Test func storesConstantWeightsAsRowsWhereTheDeviceAsks() throws {
        var g = Self.graph()
        try g.inferTypes()
        let before = try Self.run(g)
        #expect(WeightRows(wants: { _, dtype in dtype == .float32 }).apply(&g) == 1)
        #expect(g.initializers["w"]?.shape == [2, 3])
        #expect(try g.initializers["w"]?.doubleValues() == [1, 3, 5, 2, 4, 6])
        #expect((g.nodes[0].layer as? MatMulLayer)?.transposeB == true)
        #expect((g.nodes[1].layer as? MatMulLayer)?.transposeB == false && g.initializers["shared"]?.shape == [3, 2])
        #expect(try Self.run(g) == before)

        var untouched = Self.graph()
        #expect(WeightRows(wants: { _, dtype in dtype == .float16 }).apply(&untouched) == 0)
        #expect(untouched.initializers["w"]?.shape == [3, 2])
    }
}
