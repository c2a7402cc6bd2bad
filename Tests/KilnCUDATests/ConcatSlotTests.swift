import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Concat inputs their producers write straight into the concat's columns (`CUDAConcatSlots`): where a slot is
/// offered, the strides a producer writes it with, the copies the concat keeps and where the memory layout
/// stores the values (no GPU needed; the GPU runs are in `ConcatInPlaceTests`).
@Suite struct ConcatSlotTests {
    /// x [2, 16, 4, 4] -> a, b, c = relu(x); y = concat(a, b, x, c, c, d) on channels with d = relu(x) also an
    /// output: only a and b may be written into y (x is a graph input, c is read twice, d is read elsewhere).
    static func network(batch: Int = 2) throws -> Graph {
        var n = NetworkBuilder(name: "slots")
        let x = n.addInput("x", .float32, [.value(batch), 16, 4, 4])
        let (a, b, c, d) = (try n.relu(x), try n.relu(x), try n.relu(x), try n.relu(x))
        let y = try n.add(ConcatLayer(axis: 1), [a, b, x, c, c, d], name: "y")[0]
        try n.markOutput(y)
        try n.markOutput(d, as: "d")
        return try n.build()
    }

    @Test func offersTheColumnsOfInputsReadOnlyByTheConcat() throws {
        let graph = try Self.network()
        let offers = CUDAConcatSlots.offers(graph)
        let rows = 16 * 4 * 4
        #expect(offers.keys.sorted() == [0, 1])
        #expect(
            offers[0]
                == CUDAConcatSlots.Offer(
                    slot: CUDAOutputSlot(rows: 2, rowElements: rows, rowStride: 6 * rows), concat: 4, input: 0,
                    byteOffset: 0))
        #expect(offers[1]?.input == 1 && offers[1]?.byteOffset == rows * 4)
        // At batch 1 every input is one block of the output: the memory layout's placements take them instead.
        #expect(CUDAConcatSlots.offers(try Self.network(batch: 1)).isEmpty)
    }

    @Test func slotStridesStepWholeRows() {
        // Channels-last [N, H, W, C] with 8 of the concat's 24 channels: the pixels step 24, the channels 1.
        let last = CUDAOutputSlot(rows: 2 * 4 * 4, rowElements: 8, rowStride: 24)
        #expect(last.strides(of: [2, 4, 4, 8]) == [4 * 4 * 24, 4 * 24, 24, 1])
        // Channels-first at batch 2 with 8 of 24 channels of 4x4: images step the concat's 24 planes.
        let first = CUDAOutputSlot(rows: 2, rowElements: 8 * 16, rowStride: 24 * 16)
        #expect(first.strides(of: [2, 8, 4, 4]) == [24 * 16, 16, 4, 1])
        #expect(first.strides(of: [1, 2, 8, 4, 4]) == [2 * 24 * 16, 24 * 16, 16, 4, 1])
        // A row that is not whole trailing axes, or a shape of another size, has no strides.
        #expect(CUDAOutputSlot(rows: 4, rowElements: 6, rowStride: 12).strides(of: [2, 3, 4]) == nil)
        #expect(last.strides(of: [2, 4, 4, 16]) == nil)
    }

    /// The concat copies only the inputs not written into it, up to 8 in one launch, each to its own columns;
    /// with every input written there it has no steps.
    @Test func theConcatCopiesOnlyTheInputsLeft() throws {
        let graph = try Self.network()
        let node = graph.nodes[4]
        let layer = try #require(node.layer as? ConcatLayer)
        var info = CUDANodeInfo(
            node: node, inputs: node.inputs.map { graph.type(of: $0)?.tensorType },
            outputs: node.outputs.compactMap { graph.type(of: $0)?.tensorType },
            constants: node.inputs.map { _ in nil }, architecture: 90, options: CUDAOptions())
        func launches(_ placed: Set<Int>) throws -> [CUDALaunch] {
            info.placedInputs = placed
            return try CUDAShapeConcat.lower(layer, info).steps.compactMap {
                if case .launch(let launch) = $0 { return launch }
                return nil
            }
        }
        // Each input is 16·4·4 float32 a row: 64 of the kernel's 16-byte units.
        let units = 16 * 4 * 4 * 4 / 16
        func columns(_ launch: CUDALaunch?) -> [CUDAArgument] {
            guard let arguments = launch?.arguments else { return [] }
            return Array(arguments[(1 + CUDAShapeKernels.concatInputs)...].prefix(2))
        }
        #expect(try launches([]).count == 1)
        // b and the first c written: a, x, the second c and d left, at columns 0, 2, 4 and 5 of 6, one launch.
        let split = try launches([1, 3])
        #expect(split.count == 1)
        #expect(
            columns(split.first) == [
                .dims([units, 2 * units, 3 * units, 4 * units]), .dims([0, 2 * units, 4 * units, 5 * units]),
            ])
        #expect(try launches(Set(0..<6)).isEmpty)

        // Run as the kernel's index math says: the copied inputs' bytes land in their columns of both images'
        // rows, the written inputs' columns are not touched.
        info.placedInputs = [1, 3]
        let rowBytes = 16 * 4 * 4 * 4
        let inputs = (0..<6).map { j in (0..<(2 * rowBytes)).map { UInt8((j * 37 + $0) % 251) } }
        let out = try ShapeEmulator.run(
            try CUDAShapeConcat.lower(layer, info), inputs: inputs, outputSizes: [2 * 6 * rowBytes])[0]
        for image in 0..<2 {
            for j in 0..<6 {
                let got = out[((image * 6 + j) * rowBytes)..<((image * 6 + j + 1) * rowBytes)]
                let want =
                    [1, 3].contains(j)
                    ? [UInt8](repeating: 0xEE, count: rowBytes)
                    : Array(inputs[j][(image * rowBytes)...].prefix(rowBytes))
                #expect(Array(got) == want, "image \(image), input \(j)")
            }
        }
    }

    /// The values written into the concat are stored at their columns' start in its output.
    @Test func theLayoutStoresSlotsInsideTheConcatsOutput() throws {
        let graph = try Self.network()
        let nodes = try ConcatInPlaceTests.lowered(graph)
        let (a, b) = (graph.nodes[0].outputs[0], graph.nodes[1].outputs[0])
        let rowBytes = 16 * 4 * 4 * 4
        let layout = try CUDAMemoryLayout(graph: graph, nodes: nodes, slots: [a: ("y", 0), b: ("y", rowBytes)])
        #expect(layout.storage(of: a) == ("y", 0) && layout.storage(of: b) == ("y", rowBytes))
        #expect(layout.isStored(b, inside: "y") && !layout.isStored("x", inside: "y"))
        #expect(try #require(layout.arenaOffset(of: b)) == (try #require(layout.arenaOffset(of: "y"))) + rowBytes)
    }
}
