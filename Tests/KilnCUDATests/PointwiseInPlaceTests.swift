import KilnIR
import KilnOptimizer
import KilnRuntime
import Testing

@testable import KilnCUDA

/// Pointwise outputs written over an input nothing reads afterwards (`pointwise-in-place`): which inputs a
/// lowering offers and which the memory layout takes (no GPU needed). The GPU tests run whole networks through it.
@Suite struct PointwiseInPlaceTests {
    /// x -> a = relu(x); b = relu(a); c = relu(b); d = c + a; e = relu(d), the output. 64 float32 values each.
    static func network() throws -> Graph {
        var n = NetworkBuilder(name: "pointwise")
        let x = n.addInput("x", .float32, [4, 16])
        let a = try n.relu(x)
        let b = try n.relu(a)
        let c = try n.relu(b)
        let d = try n.add(c, a)
        try n.markOutput(try n.relu(d), as: "e")
        return try n.build()
    }

    static func lowered(_ graph: Graph) throws -> [CUDAPlanBuilder.LoweredNode] {
        try graph.nodes.map { node in
            let lowering = try #require(CUDALoweringRegistry.all[node.kind])
            let info = CUDANodeInfo(
                node: node, inputs: node.inputs.map { graph.type(of: $0)?.tensorType },
                outputs: node.outputs.compactMap { graph.type(of: $0)?.tensorType },
                constants: node.inputs.map { graph.initializers[$0] }, architecture: 90, options: CUDAOptions())
            return CUDAPlanBuilder.LoweredNode(node: node, lowering: try lowering(info))
        }
    }

    @Test func outputsTakeTheBytesOfInputsReadNoMore() throws {
        let graph = try Self.network()
        let nodes = try Self.lowered(graph)
        let pointwise = nodes.filter { !($0.lowering?.steps.isEmpty ?? true) }
        #expect(pointwise.count == 5 && pointwise.allSatisfy { $0.lowering?.inPlace == [0: 0] })
        let (a, b, c, d) = (
            graph.nodes[0].outputs[0], graph.nodes[1].outputs[0], graph.nodes[2].outputs[0], graph.nodes[3].outputs[0]
        )
        let layout = try CUDAMemoryLayout(graph: graph, nodes: nodes)
        // a is a graph input's result read again by d: b keeps bytes of its own; x is the graph's input.
        #expect(layout.storage(of: a).root == a && layout.storage(of: b).root == b)
        // c over b (read by nothing else), d over c, and relu(d) over d: the output "e" (a view of it) is there.
        #expect(layout.storage(of: c).root == b && layout.storage(of: d).root == b)
        #expect(layout.storage(of: graph.nodes[4].outputs[0]).root == b && layout.storage(of: "e").root == b)
        // b's bytes (holding c, then d) and a are alive together until d: they do not overlap.
        let (offsetA, offsetB) = (try #require(layout.arenaOffset(of: a)), try #require(layout.arenaOffset(of: b)))
        #expect(offsetA + 256 <= offsetB || offsetB + 256 <= offsetA)

        let off = try CUDAMemoryLayout(graph: graph, nodes: nodes, overwritesInputs: false)
        #expect(off.storage(of: c).root == c && off.storage(of: d).root == d)
        #expect(layout.plan.naiveBytes < off.plan.naiveBytes)
    }

    /// Only an operand of the output's shape and element size may be overwritten: not a broadcast one, not
    /// across a cast that changes the element size.
    @Test func lowersOfferOnlyWholeSameSizeOperands() throws {
        var n = NetworkBuilder(name: "offers")
        let x = n.addInput("x", .float32, [4, 16])
        let row = n.addInput("row", .float32, [16])
        let sum = try n.add(row, x)
        let half = try n.add(CastLayer(to: .float16), [sum])[0]
        try n.markOutput(half, as: "y")
        let nodes = try Self.lowered(try n.build())
        #expect(nodes[0].lowering?.inPlace == [0: 1], "the row broadcasts; x has the output's shape")
        #expect(nodes[1].lowering?.inPlace == [:])
    }

    /// `--no-fuse pointwise-in-place` reaches the builder as a device pass name.
    @Test func theSwitchIsADevicePassName() {
        #expect(Pipeline.devicePassNames.contains(Pipeline.pointwiseInPlace))
    }
}
