import KilnIR
import KilnRuntime

/// Lowerings of the Shape family: reshape-like layers alias their input; transpose, slice, split, expand,
/// tile and depth/space are strided copies (`CUDAStridedCopy`); concat, pad and the generators have their own
/// kernels; gathers live in `CUDAIndexingLowerings`. Parameters that the CPU reads from inputs at run time
/// must be constants here (the output shape alone does not fix them), else the lowering throws `unsupported`.
enum CUDAShapeLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] =
        aliasing + copies + CUDAShapeGeneration.all + CUDAIndexingLowerings.all

    static let aliasing: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(ReshapeLayer.self) { _, info in try alias(info) },
        cudaLowering(IdentityLayer.self) { _, info in try alias(info) },
    ]

    /// Output 0 is input 0's bytes; checked so that a shape-inference slip cannot alias a smaller buffer.
    static func alias(_ info: CUDANodeInfo) throws -> CUDALowering {
        let input = try info.input(0)
        guard info.outputs.count >= 1, info.outputs[0].dtype.byteSize == input.dtype.byteSize,
            Tensor.elementCount(try info.inputShape(0)) == Tensor.elementCount(try info.outputShape(0))
        else { throw KilnError.shapeMismatch("'\(info.node.name)' cannot alias \(input) as \(info.outputs)") }
        return CUDALowering(aliases: [0: 0])
    }

    static let copies: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(TransposeLayer.self) { layer, info in
            let shape = try info.inputShape(0)
            let p = try layer.permutation(rank: shape.count)
            let strides = Broadcast.strides(shape)
            let (view, viewStrides) = (p.map { shape[$0] }, p.map { strides[$0] })
            // Moving only size-1 axes ([N, 1, 1, C] back to channels-first after a global pool) keeps the bytes:
            // the output is the input's buffer.
            if isContiguous(view, viewStrides) { return try alias(info) }
            return try strided(info, shape: view, strides: viewStrides)
        },
        cudaLowering(SliceLayer.self) { layer, info in
            let shape = try info.inputShape(0)
            let ranges = try sliceRanges(layer, info, shape: shape)
            let strides = Broadcast.strides(shape)
            let offset = zip(ranges, strides).reduce(0) { $0 + $1.0.start * $1.1 }
            let viewShape = ranges.map(\.count)
            let viewStrides = zip(ranges, strides).map { $0.step * $1 }
            // A contiguous block (channels of a channels-first image at batch 1) on the arena's alignment is a
            // view: no copy.
            let es = try CUDAShapeKernels.requireElementSize(try info.input(0).dtype)
            if isContiguous(viewShape, viewStrides), Tensor.elementCount(viewShape) > 0,
                offset * es % MemoryPlanner.defaultAlignment == 0
            {
                return CUDALowering(aliases: [0: 0], aliasOffsets: [0: offset * es])
            }
            return try strided(info, shape: viewShape, strides: viewStrides, offset: offset)
        },
        cudaLowering(ExpandLayer.self) { _, info in
            let shape = try info.inputShape(0)
            let out = try info.outputShape(0)
            guard try Broadcast.shape(shape, out) == out else {
                throw KilnError.shapeMismatch("expand of \(shape) to \(out)")
            }
            return try strided(info, shape: out, strides: Broadcast.strides(of: shape, broadcastTo: out))
        },
        cudaLowering(TileLayer.self) { _, info in
            // Tile is a broadcast of the input viewed as [1, d0, 1, d1, ...] to [r0, d0, r1, d1, ...]; the
            // repeats follow from the shapes, so a run-time repeats input is fine.
            let shape = try info.inputShape(0)
            let out = try info.outputShape(0)
            guard out.count == shape.count else { throw KilnError.shapeMismatch("tile of \(shape) to \(out)") }
            if Tensor.elementCount(out) == 0 { return CUDALowering(steps: []) }
            let strides = Broadcast.strides(shape)
            var view: [Int] = []
            var viewStrides: [Int] = []
            for (d, (n, m)) in zip(shape, out).enumerated() {
                guard n > 0, m % n == 0 else { throw KilnError.shapeMismatch("tile of \(shape) to \(out)") }
                view += [m / n, n]
                viewStrides += [0, strides[d]]
            }
            return try strided(info, shape: view, strides: viewStrides)
        },
        cudaLowering(DepthSpaceLayer.self) { layer, info in try depthSpace(layer, info) },
        cudaLowering(SplitLayer.self) { layer, info in
            let shape = try info.inputShape(0)
            let es = try CUDAShapeKernels.requireElementSize(try info.input(0).dtype)
            let a = try ShapeAxes.normalize(layer.axis, rank: shape.count)
            let strides = Broadcast.strides(shape)
            var start = 0
            var steps: [CUDAStep] = []
            for j in 0..<info.outputs.count {
                let piece = try info.outputShape(j)
                guard piece.count == shape.count, (0..<shape.count).allSatisfy({ $0 == a || piece[$0] == shape[$0] })
                else { throw KilnError.shapeMismatch("split piece \(piece) of \(shape)") }
                steps += try CUDAStridedCopy.steps(
                    source: .input(0), destination: .output(j), shape: piece, strides: strides,
                    offset: start * strides[a], elementSize: es)
                start += piece[a]
            }
            guard start == shape[a] else { throw KilnError.shapeMismatch("split pieces do not cover axis \(a)") }
            return CUDALowering(steps: steps)
        },
        cudaLowering(ConcatLayer.self) { layer, info in try CUDAShapeConcat.lower(layer, info) },
        cudaLowering(PadLayer.self) { layer, info in try CUDAShapePad.lower(layer, info) },
    ]

    /// Input 0 viewed through `strides` copied to output 0.
    static func strided(_ info: CUDANodeInfo, shape: [Int], strides: [Int], offset: Int = 0) throws -> CUDALowering {
        let es = try CUDAShapeKernels.requireElementSize(try info.input(0).dtype)
        guard Tensor.elementCount(shape) == Tensor.elementCount(try info.outputShape(0)) else {
            throw KilnError.shapeMismatch("'\(info.node.name)': view \(shape) does not fill \(info.outputs[0])")
        }
        return CUDALowering(
            steps: try CUDAStridedCopy.steps(
                source: .input(0), destination: .output(0), shape: shape, strides: strides, offset: offset,
                elementSize: es))
    }

    /// Whether a view with these strides walks its elements in storage order without gaps (axes of size 1 may
    /// have any stride).
    static func isContiguous(_ shape: [Int], _ strides: [Int]) -> Bool {
        zip(zip(shape, strides), Broadcast.strides(shape)).allSatisfy { $0.0 == 1 || $0.1 == $1 }
    }

    /// Integer values of a parameter held by the layer or given by constant input `index`; nil when absent.
    static func constantInts(_ value: [Int]?, _ info: CUDANodeInfo, _ index: Int, what: String) throws -> [Int]? {
        if let value { return value }
        guard info.hasInput(index) else { return nil }
        guard index < info.constants.count, let tensor = info.constants[index] else {
            throw KilnError.unsupported("CUDA \(info.node.kind) needs constant \(what) (input \(index) is computed)")
        }
        return try tensor.intValues()
    }

    static func sliceRanges(_ layer: SliceLayer, _ info: CUDANodeInfo, shape: [Int]) throws -> [SliceLayer.Range] {
        if layer.isStatic, let s = layer.starts, let e = layer.ends {
            return try SliceLayer.resolve(shape: shape, starts: s, ends: e, axes: layer.axes, steps: layer.steps)
        }
        guard let starts = try constantInts(layer.starts, info, 1, what: "starts"),
            let ends = try constantInts(layer.ends, info, 2, what: "ends")
        else { throw KilnError.invalidArgument("slice '\(info.node.name)' has no starts or ends") }
        return try SliceLayer.resolve(
            shape: shape, starts: starts, ends: ends, axes: try constantInts(layer.axes, info, 3, what: "axes"),
            steps: try constantInts(layer.steps, info, 4, what: "steps"))
    }

    /// DepthToSpace / SpaceToDepth: a 6-D transpose of a view of the input, as the CPU kernel does it.
    static func depthSpace(_ layer: DepthSpaceLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let x = try info.inputShape(0)
        guard x.count == 4 else { throw KilnError.shapeMismatch("\(layer.direction.rawValue) needs a 4-D input") }
        let (n, c, h, w) = (x[0], x[1], x[2], x[3])
        let b = layer.blockSize
        guard b > 0 else { throw KilnError.invalidArgument("blocksize \(b)") }
        let view: [Int]
        let perm: [Int]
        switch layer.direction {
        case .depthToSpace:
            guard c % (b * b) == 0 else { throw KilnError.shapeMismatch("channels \(c) not divisible by \(b * b)") }
            if layer.mode == .dcr {
                view = [n, b, b, c / (b * b), h, w]
                perm = [0, 3, 4, 1, 5, 2]
            } else {
                view = [n, c / (b * b), b, b, h, w]
                perm = [0, 1, 4, 2, 5, 3]
            }
        case .spaceToDepth:
            guard h % b == 0, w % b == 0 else {
                throw KilnError.shapeMismatch("spatial \(h)x\(w) not divisible by \(b)")
            }
            view = [n, c, h / b, b, w / b, b]
            perm = layer.mode == .dcr ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
        }
        let strides = Broadcast.strides(view)
        return try strided(info, shape: perm.map { view[$0] }, strides: perm.map { strides[$0] })
    }
}
