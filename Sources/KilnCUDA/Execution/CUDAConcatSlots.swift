import KilnIR
import KilnOptimizer

/// The slots concats offer their producers before anything is lowered: where an input is not one contiguous
/// block of the concat's output (a channels-last concat on the channels, a channels-first one at batch > 1),
/// its producer may still write it straight into its columns of every row (`CUDAOutputSlot`). Offered where the
/// input is produced as output 0 of a layer of this graph, read by nothing but this concat, once, and where
/// every row of it would start on a 16-byte boundary (what the libraries' vectorized epilogues need). The
/// producer's lowering decides (`CUDALowering.writesSlot`); the concat copies only the inputs not written so.
/// A concat whose inputs are contiguous blocks keeps the memory layout's placements instead
/// (`CUDAMemoryLayout.placeInputs`).
struct CUDAConcatSlots {
    struct Offer: Equatable {
        var slot: CUDAOutputSlot
        /// The concat's node index and which of its inputs the slot is.
        var concat: Int
        var input: Int
        /// Where the slot's first row starts inside the concat's output.
        var byteOffset: Int
    }

    static let alignment = 16

    /// Producer node index -> the slot offered to its output 0.
    static func offers(_ graph: Graph) -> [Int: Offer] {
        let uses = graph.useCounts
        var producers: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() {
            if let first = node.outputs.first, !first.isEmpty { producers[first] = index }
        }
        let boundary = Set(graph.outputs.map(\.name) + graph.inputs.map(\.name))
        var offers: [Int: Offer] = [:]
        for (index, node) in graph.nodes.enumerated() {
            guard let concat = node.layer as? ConcatLayer, let output = node.outputs.first,
                let type = graph.type(of: output)?.tensorType, let shape = type.concreteShape,
                let axis = try? ShapeAxes.normalize(concat.axis, rank: shape.count)
            else { continue }
            let outer = shape[..<axis].reduce(1, *)
            let inner = shape[(axis + 1)...].reduce(1, *)
            let rowStride = shape[axis] * inner
            let bytes = type.dtype.byteSize
            guard outer > 1, rowStride * bytes % alignment == 0 else { continue }
            var start = 0
            for (j, name) in node.inputs.enumerated() {
                guard let input = graph.type(of: name)?.tensorType, let dims = input.concreteShape,
                    dims.count == shape.count
                else { break }
                defer { start += dims[axis] }
                let rowElements = dims[axis] * inner
                guard rowElements > 0, input.dtype == type.dtype, !boundary.contains(name), uses[name] == 1,
                    graph.initializers[name] == nil, let producer = producers[name], producer < index,
                    offers[producer] == nil, start * inner * bytes % alignment == 0
                else { continue }
                offers[producer] = Offer(
                    slot: CUDAOutputSlot(rows: outer, rowElements: rowElements, rowStride: rowStride),
                    concat: index, input: j, byteOffset: start * inner * bytes)
            }
        }
        return offers
    }
}
