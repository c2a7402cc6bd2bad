import KilnIR

/// Lowerings of the Reduction family: reduce, softmax, normalization and pooling.
enum CUDAReductionLowerings {
    static let all: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(ReduceLayer.self) { layer, info in try reduce(layer, info) },
        cudaLowering(SoftmaxLayer.self) { layer, info in try CUDASoftmaxLowering.lower(layer, info) },
        cudaLowering(NormalizationLayer.self) { layer, info in try CUDANormalizationLowering.lower(layer, info) },
        cudaLowering(PoolLayer.self) { layer, info in try CUDAPoolLowering.lower(layer, info) },
    ]

    /// Rows at most this long (or very many rows) are folded one warp per row; longer ones one block per row.
    static let warpRowLimit = 2048
    /// Warps per block of the warp-per-row kernel.
    static let warpsPerBlock = 8
    /// Threads of the block-per-row kernel.
    static let rowBlockThreads = 512

    static func reduce(_ layer: ReduceLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let shape = try info.inputShape(0)
        let dtype = try info.input(0).dtype
        var given = layer.axes
        if given == nil, info.hasInput(1) {
            guard info.constants.count > 1, let constant = info.constants[1] else {
                throw KilnError.unsupported("CUDA reduce needs constant axes (the axes input is computed)")
            }
            given = try constant.intValues()
        }
        let axes = try layer.reducedAxes(rank: shape.count, given: given)
        if axes.isEmpty && (layer.noopWithEmptyAxes || shape.isEmpty) {
            // The CPU kernel returns the input unchanged: same bytes, same shape.
            return CUDALowering(aliases: [0: 0])
        }
        _ = try CUDAReductionTypes.require(dtype, "reduce")
        guard let plan = CUDAReduceFactorization.make(shape: shape, axes: axes) else {
            throw KilnError.unsupported(
                "CUDA reduce over non-contiguous axes \(axes) of shape \(shape) is not implemented")
        }
        return CUDALowering(
            steps: try reduceSteps(CUDAReduceOp(layer.op), dtype, plan, input: .input(0), output: .output(0)))
    }

    /// The launch that folds `input` viewed as `plan` into `output` (outer * inner elements).
    static func reduceSteps(
        _ op: CUDAReduceOp, _ dtype: DType, _ plan: CUDAReduceFactorization, input: CUDAOperand,
        output: CUDAOperand
    ) throws -> [CUDAStep] {
        guard plan.outputCount > 0 else { return [] }
        let source = try CUDAReductionSources.reduce(op, dtype)
        if plan.inner > 1 {
            let tiles = CUDAReductionLaunch.ceilDiv(plan.outputCount, 32)
            return [
                .launch(
                    CUDALaunch(
                        source: source, function: "reduce_columns",
                        grid: CUDADim3(CUDAReductionLaunch.blocks(tiles, perBlock: 1)),
                        block: CUDADim3(32, CUDAReductionSources.columnSplit),
                        arguments: [
                            .pointer(input), .pointer(output), .int(plan.outer), .int(plan.reduced), .int(plan.inner),
                        ]))
            ]
        }
        let rows = plan.outer
        let manyRows = rows >= CUDAReductionLaunch.multiprocessors * 4 * warpsPerBlock
        if plan.reduced <= warpRowLimit || manyRows {
            return [
                .launch(
                    CUDALaunch(
                        source: source, function: "reduce_rows_warp",
                        grid: CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: warpsPerBlock)),
                        block: CUDADim3(32 * warpsPerBlock),
                        arguments: [.pointer(input), .pointer(output), .int(rows), .int(plan.reduced)]))
            ]
        }
        return [
            .launch(
                CUDALaunch(
                    source: source, function: "reduce_rows_block",
                    grid: CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: 1)), block: CUDADim3(rowBlockThreads),
                    arguments: [.pointer(input), .pointer(output), .int(rows), .int(plan.reduced)]))
        ]
    }
}
