import KilnIR

/// A fused pointwise layer as one generated kernel: each step's pointwise function (the same CUDA C its
/// unfused layer uses) becomes a device function, and the kernel's function calls them in order on registers,
/// so the chain reads its inputs once and writes one output. The walk over the output (flat, vectorized, or
/// broadcasting) is the unfused kernels' (`PointwiseKernel`).
enum CUDAElementwiseFused {
    static func lower(_ layer: FusedPointwiseLayer, _ info: CUDANodeInfo) throws -> CUDALowering {
        guard !layer.steps.isEmpty else { throw KilnError.invalidArgument("fused pointwise layer without steps") }
        let function = try compose(
            layer, inputs: (0..<info.inputCount).map { CUDAPrelude.computeType(try info.input($0).dtype) })
        return try CUDAElementwiseLowerings.lower(
            function.function, info, inputs: Array(0..<info.inputCount), parameters: function.parameters)
    }

    /// The composed function and its launch parameters, for inputs of `inputs` dtypes.
    static func compose(
        _ layer: FusedPointwiseLayer, inputs: [DType]
    ) throws -> (function: PointwiseFunction, parameters: [CUDAArgument]) {
        var results: [DType] = []
        var helpers = ""
        var body = ""
        var parameterTypes: [String] = []
        var parameters: [CUDAArgument] = []
        for (index, step) in layer.steps.enumerated() {
            let dtypes = try step.operands.map { operand -> DType in
                switch operand {
                case .input(let i):
                    guard i < inputs.count else { throw KilnError.invalidArgument("fused step reads input \(i)") }
                    return inputs[i]
                case .step(let s):
                    guard s < results.count else { throw KilnError.invalidArgument("fused step reads step \(s)") }
                    return results[s]
                }
            }
            let (function, values) = try pointwise(step.layer, dtypes)
            guard function.inputs.count == step.operands.count else {
                throw KilnError.invalidArgument("fused step \(index) has \(step.operands.count) operands")
            }
            let outType = try CUDAPrelude.requireTypeName(function.output)
            helpers += try PointwiseKernel.deviceFunction(function, named: "kiln_step\(index)")
            let first = parameterTypes.count
            parameterTypes += function.parameterTypes
            parameters += values
            let arguments =
                step.operands.map { operand -> String in
                    switch operand {
                    case .input(let i): "a\(i)"
                    case .step(let s): "t\(s)"
                    }
                } + function.parameterTypes.indices.map { "p\(first + $0)" }
            body += "    const \(outType) t\(index) = kiln_step\(index)(\(arguments.joined(separator: ", ")));\n"
            results.append(function.output)
        }
        body += "    return t\(layer.steps.count - 1);"
        let name = "fused_" + fingerprint(inputs.map(\.onnxName).joined(separator: ",") + helpers + body)
        let composed = PointwiseFunction(
            name: name, inputs: inputs, output: results[results.count - 1], parameterTypes: parameterTypes,
            body: body, helpers: helpers)
        return (composed, parameters)
    }

    /// The pointwise function of one unfused layer and its parameter values.
    static func pointwise(_ layer: any Layer, _ dtypes: [DType]) throws -> (PointwiseFunction, [CUDAArgument]) {
        switch layer {
        case let unary as UnaryLayer:
            guard dtypes.count == 1 else { throw KilnError.invalidArgument("unary step with \(dtypes.count) operands") }
            return try PointwiseUnary.function(unary.op, dtypes[0])
        case let binary as BinaryLayer:
            guard dtypes.count == 2 else {
                throw KilnError.invalidArgument("binary step with \(dtypes.count) operands")
            }
            return (try PointwiseBinary.function(binary.op, dtypes[0], dtypes[1]), [])
        case let clip as ClipLayer:
            // Bounds from the layer's attributes (a fused step has no bound inputs); absent ones do not clamp.
            guard dtypes.count == 1 else { throw KilnError.invalidArgument("clip step with \(dtypes.count) operands") }
            let low = try clip.min.map { Tensor(scalar: $0) } ?? CUDAElementwiseLowerings.extreme(dtypes[0], low: true)
            let high =
                try clip.max.map { Tensor(scalar: $0) } ?? CUDAElementwiseLowerings.extreme(dtypes[0], low: false)
            return (
                try PointwiseUnary.clip(dtypes[0], lowFromInput: false, highFromInput: false),
                [
                    try PointwiseHelpers.typedParameter(low, dtypes[0]).1,
                    try PointwiseHelpers.typedParameter(high, dtypes[0]).1,
                ]
            )
        case is SelectLayer:
            guard dtypes.count == 3, dtypes[0] == .bool, dtypes[1] == dtypes[2] else {
                throw KilnError.typeMismatch("select step needs a bool condition and two values of one dtype")
            }
            return (try PointwiseBinary.select(dtypes[1]), [])
        default:
            throw KilnError.unsupported("CUDA fused pointwise step of kind '\(layer.kind)'")
        }
    }

    /// 16 hex digits of FNV-1a over `text`: a short, stable kernel name for a composition.
    static func fingerprint(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
