import KilnIR

/// Lowers the normalization layer: layer and RMS normalization (with layer normalization's optional mean and
/// inverse std-dev outputs), instance and group normalization, inference batch normalization and local
/// response normalization. Training batch normalization, mean-variance and Lp normalization throw
/// `unsupported`.
enum CUDANormalizationLowering {
    static let warpsPerBlock = 4
    static let rowBlockThreads = 512
    static let warpRowLimit = 1024

    /// How a scale or bias reaches the kernel: an input or a derived constant, read with stride 1 or 0.
    struct Parameter: Equatable {
        var operand: CUDAOperand
        var stride: Int
    }

    static func lower(_ layer: NormalizationLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let shape = try info.inputShape(0)
        let dtype = try info.input(0).dtype
        _ = try CUDAReductionTypes.require(dtype, "normalization")
        for i in 1..<info.inputCount where info.hasInput(i) {
            guard try info.input(i).dtype == dtype else {
                throw KilnError.unsupported("CUDA normalization needs parameters of the input's dtype \(dtype)")
            }
        }
        switch layer.method {
        case .layer(let axis): return try trailing(layer, info, shape, dtype, axis: axis, center: true)
        case .rms(let axis): return try trailing(layer, info, shape, dtype, axis: axis, center: false)
        case .batch(let training, _):
            guard !training else { throw KilnError.unsupported("CUDA batch normalization in training mode") }
            return try batch(layer, info, shape, dtype)
        case .instance:
            try requireChannels(shape)
            let (c, s) = (shape[1], shape[2...].reduce(1, *))
            return try rows(
                layer, info, dtype, rows: shape[0] * c, length: s, segment: s, groups: c, perGroup: 1, affine: c)
        case .group(let groups, let perGroupAffine):
            try requireChannels(shape)
            let (c, s) = (shape[1], shape[2...].reduce(1, *))
            guard groups > 0, c % groups == 0 else {
                throw KilnError.invalidArgument("\(c) channels do not split into \(groups) groups")
            }
            let per = c / groups
            if perGroupAffine {
                return try rows(
                    layer, info, dtype, rows: shape[0] * groups, length: per * s, segment: per * s, groups: groups,
                    perGroup: 1, affine: groups)
            }
            return try rows(
                layer, info, dtype, rows: shape[0] * groups, length: per * s, segment: s, groups: groups,
                perGroup: per, affine: c)
        case .lrn(let size, let alpha, let beta, let bias):
            return try lrn(info, shape, dtype, size: size, alpha: alpha, beta: beta, bias: bias)
        case .meanVariance, .lp:
            throw KilnError.unsupported("CUDA normalization \(layer.description) is not implemented")
        }
    }

    private static func requireChannels(_ shape: [Int]) throws {
        guard shape.count >= 2 else {
            throw KilnError.shapeMismatch("normalization needs an N x C x ... input, got shape \(shape)")
        }
    }

    /// Input `index` as a parameter of `count` elements (stride 1) or one broadcast element (stride 0); an
    /// absent (or nil) input becomes a one-element constant `fill` appended to `constants`. `tail`, when given, is the
    /// shape the parameter must broadcast to (layer and RMS normalization).
    static func parameter(
        _ info: CUDANodeInfo, _ index: Int?, count: Int, tail: [Int]? = nil, fill: Double, dtype: DType,
        constants: inout [Tensor], name: String
    ) throws -> Parameter {
        guard let index, info.hasInput(index) else {
            constants.append(
                dtype == .float64 ? Tensor(shape: [1], scalars: [fill]) : Tensor(shape: [1], scalars: [Float(fill)]))
            return Parameter(operand: .constant(constants.count - 1), stride: 0)
        }
        let shape = try info.inputShape(index)
        let elements = shape.reduce(1, *)
        if let tail {
            guard shape.count <= tail.count, (try? Broadcast.shape(shape, tail)) == tail else {
                throw KilnError.shapeMismatch("\(name) of shape \(shape) does not broadcast to \(tail)")
            }
            if elements == count { return Parameter(operand: .input(index), stride: 1) }
            if elements == 1 { return Parameter(operand: .input(index), stride: 0) }
            throw KilnError.unsupported("CUDA normalization with \(name) of shape \(shape) broadcast to \(tail)")
        }
        if elements == 1 && count != 1 { return Parameter(operand: .input(index), stride: 0) }
        guard elements == count else {
            throw KilnError.shapeMismatch("\(name) has \(elements) elements, \(count) expected")
        }
        return Parameter(operand: .input(index), stride: 1)
    }

    static func trailing(
        _ layer: NormalizationLayer, _ info: CUDANodeInfo, _ shape: [Int], _ dtype: DType, axis raw: Int, center: Bool
    ) throws -> CUDALowering {
        let axis = try reductionAxis(raw, rank: shape.count)
        let tail = Array(shape[axis...])
        let rows = shape[..<axis].reduce(1, *)
        let n = tail.reduce(1, *)
        var constants: [Tensor] = []
        let scale = try parameter(
            info, 1, count: n, tail: tail, fill: 1, dtype: dtype, constants: &constants, name: "scale")
        // RMS normalization has no bias (the CPU kernel ignores a third input): a zero constant.
        let bias =
            center
            ? try parameter(info, 2, count: n, tail: tail, fill: 0, dtype: dtype, constants: &constants, name: "bias")
            : try parameter(info, nil, count: n, fill: 0, dtype: dtype, constants: &constants, name: "bias")
        let stats = center && (info.reductionHasOutput(1) || info.reductionHasOutput(2))
        if stats {
            guard layer.statisticsType == dtype else {
                throw KilnError.unsupported(
                    "CUDA layer normalization statistics of type \(layer.statisticsType) for \(dtype) input")
            }
        }
        guard rows > 0, n > 0 else { return CUDALowering(constants: constants) }
        let source = try CUDANormalizationSources.trailing(dtype, center: center, stats: stats)
        var arguments: [CUDAArgument] = [.pointer(.input(0)), .pointer(scale.operand), .pointer(bias.operand)]
        arguments.append(.pointer(.output(0)))
        var scratch: [Int] = []
        if stats {
            // An output nobody reads still needs a place to go: scratch of the statistics' size.
            let bytes = rows * dtype.byteSize
            for i in 1...2 {
                if info.reductionHasOutput(i) {
                    arguments.append(.pointer(.output(i)))
                } else {
                    scratch.append(bytes)
                    arguments.append(.pointer(.scratch(scratch.count - 1)))
                }
            }
        }
        arguments += [.int(rows), .int(n), .int(scale.stride), .int(bias.stride)]
        arguments.append(dtype == .float64 ? .float64(Double(layer.epsilon)) : .float32(layer.epsilon))
        let function: String
        let grid: CUDADim3
        let block: CUDADim3
        if n <= warpRowLimit {
            if let width = CUDANormalizationSources.vectorWidth(dtype), n % width == 0 {
                function = "norm_warpv_\(CUDAReductionLaunch.ceilDiv(n, 32 * width))"
            } else {
                function = "norm_warp1_\(CUDAReductionLaunch.powerOfTwo(atLeast: CUDAReductionLaunch.ceilDiv(n, 32)))"
            }
            grid = CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: warpsPerBlock))
            block = CUDADim3(32 * warpsPerBlock)
        } else {
            function = "norm_block"
            grid = CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: 1))
            block = CUDADim3(rowBlockThreads)
        }
        let launch = CUDALaunch(
            source: source, function: function, grid: grid, block: block, arguments: arguments)
        return CUDALowering(steps: [.launch(launch)], scratchBytes: scratch, constants: constants)
    }

    static func rows(
        _ layer: NormalizationLayer, _ info: CUDANodeInfo, _ dtype: DType, rows: Int, length: Int, segment: Int,
        groups: Int, perGroup: Int, affine: Int
    ) throws -> CUDALowering {
        var constants: [Tensor] = []
        let scale = try parameter(info, 1, count: affine, fill: 1, dtype: dtype, constants: &constants, name: "scale")
        let bias = try parameter(info, 2, count: affine, fill: 0, dtype: dtype, constants: &constants, name: "bias")
        guard rows > 0, length > 0 else { return CUDALowering(constants: constants) }
        let eps: CUDAArgument = dtype == .float64 ? .float64(Double(layer.epsilon)) : .float32(layer.epsilon)
        let threads = min(
            rowBlockThreads, max(32, CUDAReductionLaunch.powerOfTwo(atLeast: CUDAReductionLaunch.ceilDiv(length, 4))))
        let launch = CUDALaunch(
            source: try CUDANormalizationSources.planes(dtype), function: "rows",
            grid: CUDADim3(CUDAReductionLaunch.blocks(rows, perBlock: 1)), block: CUDADim3(threads),
            arguments: [
                .pointer(.input(0)), .pointer(scale.operand), .pointer(bias.operand), .pointer(.output(0)), .int(rows),
                .int(length), .int(segment), .int(groups), .int(perGroup), .int(scale.stride), .int(bias.stride), eps,
            ])
        return CUDALowering(steps: [.launch(launch)], constants: constants)
    }

    /// LRN: one thread an element, summing the squares of its window of channels (AlexNet's 5 of them) as it
    /// goes; the window's reads of neighbouring planes are coalesced like the element's own.
    static func lrn(
        _ info: CUDANodeInfo, _ shape: [Int], _ dtype: DType, size: Int, alpha: Float, beta: Float, bias: Float
    ) throws -> CUDALowering {
        try requireChannels(shape)
        guard size > 0 else { throw KilnError.invalidArgument("LRN size \(size) must be positive") }
        let total = shape.reduce(1, *)
        guard total > 0 else { return CUDALowering(steps: []) }
        let before = (size - 1) / 2
        func scalar(_ v: Double) -> CUDAArgument { dtype == .float64 ? .float64(v) : .float32(Float(v)) }
        let launch = CUDALaunch(
            source: try CUDANormalizationSources.planes(dtype), function: "lrn",
            grid: CUDADim3(CUDAReductionLaunch.blocks(total, perBlock: 256)), block: CUDADim3(256),
            arguments: [
                .pointer(.input(0)), .pointer(.output(0)), .int(total), .int(shape[1]),
                .int(shape[2...].reduce(1, *)), .int(before), .int(size - 1 - before),
                scalar(Double(alpha) / Double(size)), scalar(Double(beta)), scalar(Double(bias)),
            ])
        return CUDALowering(steps: [.launch(launch)])
    }

    static func batch(
        _ layer: NormalizationLayer, _ info: CUDANodeInfo, _ shape: [Int], _ dtype: DType
    ) throws -> CUDALowering {
        try requireChannels(shape)
        let c = shape[1]
        let spatial = shape[2...].reduce(1, *)
        let total = shape.reduce(1, *)
        var constants: [Tensor] = []
        var params: [Parameter] = []
        for (i, name) in ["scale", "bias", "mean", "variance"].enumerated() {
            guard info.hasInput(i + 1) else {
                throw KilnError.invalidArgument("batch normalization needs scale, bias, mean and variance")
            }
            params.append(
                try parameter(info, i + 1, count: c, fill: 0, dtype: dtype, constants: &constants, name: name))
        }
        guard total > 0 else { return CUDALowering(steps: []) }
        let eps: CUDAArgument = dtype == .float64 ? .float64(Double(layer.epsilon)) : .float32(layer.epsilon)
        let launch = CUDALaunch(
            source: try CUDANormalizationSources.planes(dtype), function: "batch_norm",
            grid: CUDADim3(CUDAReductionLaunch.blocks(total, perBlock: 256)), block: CUDADim3(256),
            arguments: [.pointer(.input(0))] + params.map { .pointer($0.operand) } + [
                .pointer(.output(0)), .int(total), .int(c), .int(spatial), .dims(params.map(\.stride)), eps,
            ])
        return CUDALowering(steps: [.launch(launch)])
    }
}
