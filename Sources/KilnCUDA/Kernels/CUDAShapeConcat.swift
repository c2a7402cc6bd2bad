import KilnIR

/// Concat: with one outer row (axis 0, or leading size-1 axes) each input is one contiguous block of the
/// output, so it is a `.copy` per input, and each input may be stored in its block from the start
/// (placements: the memory layout decides, and drops the copies that have nothing left to do); otherwise one
/// launch copies up to 8 inputs, each to its columns of every row, in the widest unit that every input's row
/// chunk is a multiple of, leaving out the inputs their producers wrote into the output
/// (`CUDANodeInfo.placedInputs`).
enum CUDAShapeConcat {
    static func lower(_ layer: ConcatLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let out = try info.outputShape(0)
        let es = try CUDAShapeKernels.requireElementSize(info.outputs[0].dtype)
        let a = try ShapeAxes.normalize(layer.axis, rank: out.count)
        let outer = Tensor.elementCount(Array(out[..<a]))
        let inner = Tensor.elementCount(Array(out[(a + 1)...]))
        // (input index, bytes per outer row), zero-sized inputs dropped.
        var parts: [(index: Int, bytes: Int)] = []
        var length = 0
        for j in 0..<info.inputCount {
            let shape = try info.inputShape(j)
            guard shape.count == out.count, (0..<out.count).allSatisfy({ $0 == a || shape[$0] == out[$0] }),
                try info.input(j).dtype.byteSize == es
            else { throw KilnError.shapeMismatch("concat input \(shape) for output \(out) on axis \(a)") }
            length += shape[a]
            if shape[a] * inner > 0 { parts.append((j, shape[a] * inner * es)) }
        }
        guard length == out[a] else { throw KilnError.shapeMismatch("concat inputs do not sum to \(out[a])") }
        guard outer > 0, !parts.isEmpty else { return CUDALowering(steps: []) }
        if outer == 1 {
            var steps: [CUDAStep] = []
            var placements: [Int: Int] = [:]
            var at = 0
            for part in parts {
                steps.append(
                    .copy(
                        CUDACopy(
                            destination: .output(0), destinationOffset: at, source: .input(part.index),
                            bytes: part.bytes)))
                placements[part.index] = at
                at += part.bytes
            }
            return CUDALowering(steps: steps, placements: placements)
        }
        let unit = CUDAShapeKernels.unit(dividing: parts.map(\.bytes))
        let rowUnits = parts.reduce(0) { $0 + $1.bytes } / unit
        // The inputs left to copy (their producers did not write them into the output), each with the column,
        // in units, where its part of a row starts.
        var left: [(index: Int, units: Int, column: Int)] = []
        var column = 0
        for part in parts {
            if !info.placedInputs.contains(part.index) { left.append((part.index, part.bytes / unit, column)) }
            column += part.bytes / unit
        }
        let kernel = CUDAShapeKernels.concat(unit: unit)
        var steps: [CUDAStep] = []
        for first in stride(from: 0, to: left.count, by: CUDAShapeKernels.concatInputs) {
            let group = Array(left[first..<min(first + CUDAShapeKernels.concatInputs, left.count)])
            var ends: [Int] = []
            var end = 0
            for part in group {
                end += part.units
                ends.append(end)
            }
            let pointers = (0..<CUDAShapeKernels.concatInputs).map { i -> CUDAArgument in
                .pointer(.input(group[min(i, group.count - 1)].index))
            }
            steps.append(
                .launch(
                    CUDALaunch(
                        source: kernel, function: kernel.name, grid: CUDAShapeKernels.grid(outer * end),
                        block: CUDADim3(CUDAShapeKernels.blockSize),
                        arguments: [.pointer(.output(0))] + pointers + [
                            .dims(ends), .dims(group.map(\.column)), .int32(Int32(group.count)), .int(outer),
                            .int(rowUnits), .int(end),
                        ])))
        }
        return CUDALowering(steps: steps)
    }
}
