import KilnIR

/// Layers whose outputs follow from static shapes or constants: shapeOf and size upload their answer as a
/// derived constant (the optimizer normally folds them first); constantOfShape fills; dropout at inference
/// aliases its input and fills the mask, when one is wanted, with true.
enum CUDAShapeGeneration {
    static let all: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(ShapeOfLayer.self) { layer, info in
            let shape = try info.inputShape(0)
            return upload(Tensor.int64(Array(shape[layer.range(rank: shape.count)])))
        },
        cudaLowering(SizeLayer.self) { _, info in
            upload(Tensor(scalar: Int64(Tensor.elementCount(try info.inputShape(0)))))
        },
        cudaLowering(ConstantOfShapeLayer.self) { layer, info in
            let out = try info.outputShape(0)
            guard info.outputs[0].dtype == layer.value.dtype else {
                throw KilnError.typeMismatch("constantOfShape output \(info.outputs[0]) for \(layer.value.dtype)")
            }
            let es = try CUDAShapeKernels.requireElementSize(layer.value.dtype)
            let bits = layer.value.count > 0 ? CUDAShapePad.bits(of: layer.value) : 0
            return CUDALowering(steps: fill(.output(0), count: Tensor.elementCount(out), unit: es, bits: bits))
        },
        cudaLowering(DropoutLayer.self) { _, info in
            try requireInference(info)
            var lowering = try CUDAShapeLowerings.alias(info)
            if info.outputs.count > 1, info.node.outputs.count > 1, !info.node.outputs[1].isEmpty {
                guard info.outputs[1].dtype.byteSize == 1 else {
                    throw KilnError.typeMismatch("dropout mask \(info.outputs[1]) is not bool")
                }
                lowering.steps = fill(.output(1), count: Tensor.elementCount(try info.outputShape(1)), unit: 1, bits: 1)
            }
            return lowering
        },
    ]

    /// Training mode with a non-zero ratio is random: refuse it as the CPU does; both must be constants to tell.
    static func requireInference(_ info: CUDANodeInfo) throws {
        guard info.hasInput(2) else { return }
        guard info.constants.count > 2, let training = info.constants[2] else {
            throw KilnError.unsupported("CUDA dropout needs a constant training_mode")
        }
        guard try training.scalarDouble() != 0 else { return }
        var ratio = 0.5
        if info.hasInput(1) {
            guard let r = info.constants[1] else { throw KilnError.unsupported("CUDA dropout needs a constant ratio") }
            ratio = try r.scalarDouble()
        }
        if ratio != 0 { throw KilnError.unsupported("Dropout in training mode with ratio \(ratio) is random") }
    }

    /// A `.copy` of derived constant 0 to output 0.
    static func upload(_ tensor: Tensor) -> CUDALowering {
        let bytes = tensor.count * tensor.dtype.byteSize
        guard bytes > 0 else { return CUDALowering(steps: []) }
        return CUDALowering(
            steps: [.copy(CUDACopy(destination: .output(0), source: .constant(0), bytes: bytes))],
            constants: [tensor])
    }

    static func fill(_ destination: CUDAOperand, count: Int, unit: Int, bits: UInt64) -> [CUDAStep] {
        guard count > 0 else { return [] }
        let kernel = CUDAShapeKernels.fill(unit: unit)
        return [
            .launch(
                CUDALaunch(
                    source: kernel, function: kernel.name, grid: CUDAShapeKernels.grid(count),
                    block: CUDADim3(CUDAShapeKernels.blockSize),
                    arguments: [.pointer(destination), .int(count), .int64(Int64(bitPattern: bits))]))
        ]
    }
}
