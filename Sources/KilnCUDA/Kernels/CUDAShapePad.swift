import KilnIR

/// Pad (constant, edge, wrap, reflect; negative pads crop) as one gather over the output. The pads must be
/// known when lowering (layer parameters or constant inputs), and so must a constant fill value input.
enum CUDAShapePad {
    static func lower(_ layer: PadLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let shape = try info.inputShape(0)
        let out = try info.outputShape(0)
        let dtype = try info.input(0).dtype
        let es = try CUDAShapeKernels.requireElementSize(dtype)
        guard let pads = try CUDAShapeLowerings.constantInts(layer.pads, info, 1, what: "pads") else {
            throw KilnError.invalidArgument("pad '\(info.node.name)' has no pads")
        }
        let axes = try CUDAShapeLowerings.constantInts(layer.axes, info, 3, what: "axes")
        let per = try PadLayer.perAxis(pads: pads, axes: axes, rank: shape.count)
        let expected = zip(shape, per).map { $0 + $1.0 + $1.1 }
        guard expected == out else { throw KilnError.shapeMismatch("pad of \(shape) by \(pads) is not \(out)") }
        guard shape.count <= CUDAPrelude.maxRank else {
            throw KilnError.unsupported("CUDA pad handles rank <= \(CUDAPrelude.maxRank)")
        }
        let count = Tensor.elementCount(out)
        guard count > 0 else { return CUDALowering(steps: []) }
        if layer.mode != .constant, zip(shape, out).contains(where: { $0 == 0 && $1 > 0 }) {
            throw KilnError.invalidArgument("\(layer.mode.rawValue) padding of an empty axis")
        }
        let bits = try fillBits(layer, info, dtype: dtype)
        if shape.isEmpty {
            return CUDALowering(steps: [.copy(CUDACopy(destination: .output(0), source: .input(0), bytes: es))])
        }
        let kernel = CUDAShapeKernels.pad(unit: es, rank: shape.count, mode: layer.mode)
        return CUDALowering(steps: [
            .launch(
                CUDALaunch(
                    source: kernel, function: kernel.name, grid: CUDAShapeKernels.grid(count),
                    block: CUDADim3(CUDAShapeKernels.blockSize),
                    arguments: [
                        .pointer(.output(0)), .pointer(.input(0)), .int(count), .dims(out), .dims(shape),
                        .dims(per.map(\.0)), .dims(Broadcast.strides(shape)), .int64(Int64(bitPattern: bits)),
                    ]))
        ])
    }

    /// The fill element's bytes, little-endian in the low bytes, as the CPU picks it: input 2 when it is a
    /// one-element tensor of the input's dtype, else the layer's value (default 0) converted to the dtype.
    static func fillBits(_ layer: PadLayer, _ info: CUDANodeInfo, dtype: DType) throws -> UInt64 {
        guard layer.mode == .constant else { return 0 }
        var fill: Tensor?
        if info.hasInput(2) {
            guard info.constants.count > 2, let value = info.constants[2] else {
                throw KilnError.unsupported("CUDA pad needs a constant fill value (input 2 is computed)")
            }
            if value.count == 1 && value.dtype == dtype { fill = value }
        }
        let tensor = try fill ?? dtype.visit(ScalarMaker(value: layer.value ?? 0))
        return bits(of: tensor)
    }

    /// The first element's bytes as a little-endian integer.
    static func bits(of tensor: Tensor) -> UInt64 {
        tensor.withUnsafeRawBytes { raw in
            var bits: UInt64 = 0
            for i in 0..<min(raw.count, tensor.dtype.byteSize, 8) { bits |= UInt64(raw[i]) << (8 * UInt64(i)) }
            return bits
        }
    }

    struct ScalarMaker: ScalarVisitor {
        let value: Double
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor { Tensor(scalar: T(castingFrom: value)) }
    }
}
