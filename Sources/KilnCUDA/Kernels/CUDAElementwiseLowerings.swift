import KilnIR

/// Lowerings of the Elementwise family: unary math and activations, clip, binary arithmetic/logic/comparison,
/// variadic sum/mean/max/min, select and cast. Each node becomes one grid-stride kernel (variadic nodes with
/// many inputs a few), on the flat path when every operand has the output's shape and the broadcast path
/// otherwise (see `PointwisePath`).
enum CUDAElementwiseLowerings {
    /// Inputs one variadic kernel reads; more are folded by further launches that also read the output.
    static let maxVariadicInputs = 8

    static let all: [(LayerKind, CUDALoweringFunction)] = [
        cudaLowering(UnaryLayer.self) { layer, info in
            let x = try info.input(0)
            let (function, parameters) = try PointwiseUnary.function(layer.op, compute(x.dtype))
            return try lower(function, info, inputs: [0], parameters: parameters)
        },
        cudaLowering(ClipLayer.self) { layer, info in try clip(layer, info) },
        cudaLowering(BinaryLayer.self) { layer, info in
            let function = try PointwiseBinary.function(
                layer.op, compute(info.input(0).dtype), compute(info.input(1).dtype))
            return try lower(function, info, inputs: [0, 1], parameters: [])
        },
        cudaLowering(VariadicLayer.self) { layer, info in try variadic(layer.op, info) },
        cudaLowering(SelectLayer.self) { _, info in
            let x = try info.input(1)
            guard try info.input(0).dtype == .bool, try info.input(2).dtype == x.dtype else {
                throw KilnError.typeMismatch("select needs a bool condition and two values of one dtype")
            }
            return try lower(PointwiseBinary.select(compute(x.dtype)), info, inputs: [0, 1, 2], parameters: [])
        },
        cudaLowering(CastLayer.self) { layer, info in try cast(to: layer.to, info) },
        cudaLowering(CastLikeLayer.self) { _, info in try cast(to: info.input(1).dtype, info) },
        cudaLowering(FusedPointwiseLayer.self) { layer, info in try CUDAElementwiseFused.lower(layer, info) },
    ]

    /// The dtype a pointwise function computes in for operands stored as `dtype` (float32 for 16-bit floats).
    static func compute(_ dtype: DType) -> DType { CUDAPrelude.computeType(dtype) }

    /// One kernel computing output 0 from the listed inputs; `function` computes in the operands' compute
    /// types and reads and writes them as stored.
    static func lower(
        _ function: PointwiseFunction, _ info: CUDANodeInfo, inputs: [Int], parameters: [CUDAArgument]
    ) throws -> CUDALowering {
        let output = try info.outputShape(0)
        let function = function.storing(
            inputs: try inputs.map { try info.input($0).dtype }, output: info.outputs[0].dtype)
        let plan = try PointwiseKernel.plan(function, inputShapes: inputs.map(info.inputShape), output: output)
        guard
            let launch = try PointwiseKernel.launch(
                function, plan: plan, inputs: inputs.map { .input($0) }, output: .output(0), parameters: parameters)
        else { return CUDALowering(steps: []) }
        // Each thread reads its elements of every operand before writing the same elements of the output, so an
        // operand of the output's shape and element size may be overwritten by it.
        let overwritable = try inputs.first { index in
            try info.inputShape(index) == output && info.input(index).dtype.byteSize == info.outputs[0].dtype.byteSize
        }
        return CUDALowering(steps: [.launch(launch)], inPlace: overwritable.map { [0: $0] } ?? [:])
    }

    /// Bounds from inputs 1 and 2 when present (one-element tensors of x's dtype, read on the device), else
    /// from the layer's constants, else none (the dtype's extremes).
    static func clip(_ layer: ClipLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        let dtype = try info.input(0).dtype
        let lowInput = info.hasInput(1)
        let highInput = info.hasInput(2)
        var inputs = [0]
        var parameters: [CUDAArgument] = []
        for (index, fromInput, attribute, isLow) in [
            (1, lowInput, layer.min, true), (2, highInput, layer.max, false),
        ] {
            if fromInput {
                let bound = try info.input(index)
                guard bound.dtype == dtype else {
                    throw KilnError.unsupported("clip bound of \(bound.dtype.onnxName) for \(dtype.onnxName)")
                }
                guard Tensor.elementCount(try info.inputShape(index)) == 1 else {
                    throw KilnError.invalidArgument("clip bounds must have one element")
                }
                inputs.append(index)
            } else {
                let value = try attribute.map { Tensor(scalar: $0) } ?? extreme(compute(dtype), low: isLow)
                parameters.append(try PointwiseHelpers.typedParameter(value, compute(dtype)).1)
            }
        }
        let function = try PointwiseUnary.clip(compute(dtype), lowFromInput: lowInput, highFromInput: highInput)
        return try lower(function, info, inputs: inputs, parameters: parameters)
    }

    /// The value an absent clip bound stands for: minus or plus infinity, or the integer type's limit.
    static func extreme(_ dtype: DType, low: Bool) throws -> Tensor {
        switch dtype {
        case .float32, .float64: return Tensor(scalar: low ? -Double.infinity : Double.infinity)
        case .int8: return Tensor(scalar: low ? Int8.min : Int8.max)
        case .int16: return Tensor(scalar: low ? Int16.min : Int16.max)
        case .int32: return Tensor(scalar: low ? Int32.min : Int32.max)
        case .int64: return Tensor(scalar: low ? Int64.min : Int64.max)
        case .uint8: return Tensor(scalar: low ? UInt8.min : UInt8.max)
        case .uint16: return Tensor(scalar: low ? UInt16.min : UInt16.max)
        case .uint32: return Tensor(scalar: low ? UInt32.min : UInt32.max)
        case .uint64: return Tensor(scalar: low ? UInt64.min : UInt64.max)
        default: throw KilnError.unsupported("clip of \(dtype.onnxName) on CUDA")
        }
    }

    /// Up to `maxVariadicInputs` inputs in one launch; beyond, each further launch folds the output (as its
    /// first operand, read and written element by element by the same thread) with the next inputs, and only
    /// the last divides for mean, so the order of operations is the CPU's left fold.
    static func variadic(_ op: VariadicOp, _ info: CUDANodeInfo) throws -> CUDALowering {
        let count = info.inputCount
        guard count >= 1 else { throw KilnError.invalidArgument("\(op.rawValue) needs at least one input") }
        let dtype = try info.input(0).dtype
        for i in 0..<count where try info.input(i).dtype != dtype {
            throw KilnError.typeMismatch("\(op.rawValue) of mixed dtypes")
        }
        let output = try info.outputShape(0)
        if count == 1 {
            // One input: the output is the input (mean of one does not divide, as the CPU).
            guard try info.inputShape(0) == output else { throw KilnError.shapeMismatch("\(op.rawValue) shape") }
            let bytes = Tensor.elementCount(output) * dtype.byteSize
            _ = try CUDAPrelude.requireTypeName(dtype)
            return bytes == 0
                ? CUDALowering(steps: [])
                : CUDALowering(.copy(CUDACopy(destination: .output(0), source: .input(0), bytes: bytes)))
        }
        var steps: [CUDAStep] = []
        var next = 0
        while next < count {
            let accumulate = next > 0
            let take = Swift.min(count - next, maxVariadicInputs - (accumulate ? 1 : 0))
            let indices = Array(next..<(next + take))
            next += take
            let last = next == count
            let divide = last && op == .mean
            var operands: [CUDAOperand] = indices.map { .input($0) }
            var shapes = try indices.map(info.inputShape)
            if accumulate {
                operands.insert(.output(0), at: 0)
                shapes.insert(output, at: 0)
            }
            let function = try PointwiseBinary.variadic(op, compute(dtype), count: operands.count, divide: divide)
                .storing(inputs: Array(repeating: dtype, count: operands.count), output: dtype)
            let parameters =
                divide ? [try PointwiseHelpers.typedParameter(Tensor(scalar: Double(count)), compute(dtype)).1] : []
            let plan = try PointwiseKernel.plan(function, inputShapes: shapes, output: output)
            guard
                let launch = try PointwiseKernel.launch(
                    function, plan: plan, inputs: operands, output: .output(0), parameters: parameters)
            else { return CUDALowering(steps: []) }
            steps.append(.launch(launch))
        }
        return CUDALowering(steps: steps)
    }

    /// Cast with the CPU's conversions; a cast to the same dtype is the input itself.
    static func cast(to target: DType, _ info: CUDANodeInfo) throws -> CUDALowering {
        let source = try info.input(0).dtype
        if source == target { return CUDALowering(aliases: [0: 0]) }
        return try lower(PointwiseBinary.cast(compute(source), compute(target)), info, inputs: [0], parameters: [])
    }
}
