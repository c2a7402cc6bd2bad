import KilnIR

/// `pointwise.unary` as `PointwiseFunction`s, formula for formula the CPU kernels' (ElementwiseUnaryKernels).
enum PointwiseUnary {
    /// The function for `op` on `dtype` with its parameter values, or `unsupported`.
    static func function(_ op: UnaryOp, _ dtype: DType) throws -> (PointwiseFunction, [CUDAArgument]) {
        _ = try CUDAPrelude.requireTypeName(dtype)
        let name = "\(opName(op))_\(dtype)"
        if op == .not {
            guard dtype == .bool else { throw KilnError.unsupported("not of \(dtype.onnxName)") }
            return (PointwiseFunction(name: name, inputs: [.bool], output: .bool, body: "    return !a0;"), [])
        }
        if PointwiseHelpers.isFloat(dtype) { return try float(op, dtype, name: name) }
        guard dtype.isInteger else { throw KilnError.unsupported("\(op) of \(dtype.onnxName) on CUDA") }
        return try integer(op, dtype, name: name)
    }

    /// A C identifier for the op (its parameters are launch arguments, not part of the name).
    static func opName(_ op: UnaryOp) -> String {
        switch op {
        case .isInf(let n, let p): "isinf\(n ? "n" : "")\(p ? "p" : "")"
        case .leakyRelu: "leaky_relu"
        case .elu: "elu"
        case .selu: "selu"
        case .celu: "celu"
        case .hardSigmoid: "hard_sigmoid"
        case .gelu(let t): t ? "gelu_tanh" : "gelu"
        case .thresholdedRelu: "thresholded_relu"
        case .shrink: "shrink"
        default: op.description
        }
    }

    private static func float(_ op: UnaryOp, _ dtype: DType, name: String) throws -> (PointwiseFunction, [CUDAArgument])
    {
        func m(_ f: String) -> String { PointwiseHelpers.math(f, dtype) }
        var params: [(String, CUDAArgument)] = []
        func param(_ v: Float) { params.append(PointwiseHelpers.floatParameter(v, dtype)) }
        let softplus = "(a0 > (T)0 ? a0 + \(m("log1p"))(\(m("exp"))(-a0)) : \(m("log1p"))(\(m("exp"))(a0)))"
        var output = dtype
        let body: String
        switch op {
        case .abs: body = "return \(m("fabs"))(a0);"
        case .neg: body = "return -a0;"
        case .exp, .log, .sqrt, .sin, .cos, .tan, .asin, .acos, .atan, .sinh, .cosh, .tanh, .asinh, .acosh, .atanh,
            .erf, .floor, .ceil:
            body = "return \(m(op.description))(a0);"
        case .reciprocal: body = "return (T)1 / a0;"
        case .round: body = "return \(m("rint"))(a0);"  // the default rounding mode: half to even
        case .sign: body = "return a0 > (T)0 ? (T)1 : (a0 < (T)0 ? (T)-1 : a0);"
        case .isNaN:
            output = .bool
            body = "return a0 != a0;"
        case .isInf(let negative, let positive):
            output = .bool
            // Above the largest finite value (NaN compares false).
            let largest = dtype == .float32 ? "3.40282346638528859812e+38f" : "1.7976931348623157e+308"
            body = "return \(m("fabs"))(a0) > (T)\(largest) && (a0 < (T)0 ? \(negative) : \(positive));"
        case .relu: body = "return a0 < (T)0 ? (T)0 : a0;"
        case .leakyRelu(let alpha):
            param(alpha)
            body = "return a0 < (T)0 ? p0 * a0 : a0;"
        case .elu(let alpha):
            param(alpha)
            body = "return a0 < (T)0 ? p0 * (\(m("exp"))(a0) - (T)1) : a0;"
        case .selu(let alpha, let gamma):
            param(alpha)
            param(gamma)
            body = "return a0 <= (T)0 ? p1 * (p0 * \(m("exp"))(a0) - p0) : p1 * a0;"
        case .celu(let alpha):
            param(alpha)
            body = "return kiln_smax((T)0, a0) + kiln_smin((T)0, p0 * (\(m("exp"))(a0 / p0) - (T)1));"
        case .sigmoid:
            // Split by sign so exp never overflows, as the CPU kernel.
            body = """
                if (a0 >= (T)0) return (T)1 / ((T)1 + \(m("exp"))(-a0));
                    const T e = \(m("exp"))(a0);
                    return e / ((T)1 + e);
                """
        case .hardSigmoid(let alpha, let beta):
            param(alpha)
            param(beta)
            body = "return kiln_smax((T)0, kiln_smin((T)1, p0 * a0 + p1));"
        case .hardSwish: body = "return a0 * kiln_smax((T)0, kiln_smin((T)1, a0 / (T)6 + (T)0.5));"
        case .softplus: body = "return \(softplus);"
        case .softsign: body = "return a0 / ((T)1 + \(m("fabs"))(a0));"
        case .gelu(let tanh):
            // The CPU rounds these constants to float first, for double too.
            body =
                tanh
                ? """
                const T inner = (T)0.7978845608028654f * (a0 + (T)0.044715f * a0 * a0 * a0);
                    return (T)0.5 * a0 * ((T)1 + \(m("tanh"))(inner));
                """
                : "return (T)0.5 * a0 * ((T)1 + \(m("erf"))(a0 * (T)0.7071067811865476f));"
        case .mish: body = "return a0 * \(m("tanh"))(\(softplus));"
        case .thresholdedRelu(let alpha):
            param(alpha)
            body = "return a0 > p0 ? a0 : (T)0;"
        case .shrink(let bias, let lambda):
            param(bias)
            param(lambda)
            body = "if (a0 < -p1) return a0 + p0;\n    return a0 > p1 ? a0 - p0 : (T)0;"
        case .not, .bitwiseNot:
            throw KilnError.unsupported("\(op) of \(dtype.onnxName)")
        }
        let function = PointwiseFunction(
            name: name, inputs: [dtype], output: output, parameterTypes: params.map(\.0), body: "    " + body)
        return (function, params.map(\.1))
    }

    private static func integer(
        _ op: UnaryOp, _ dtype: DType, name: String
    ) throws -> (
        PointwiseFunction, [CUDAArgument]
    ) {
        let signed = dtype.isSignedInteger
        var params: [(String, CUDAArgument)] = []
        let body: String
        switch op {
        case .relu: body = signed ? "return a0 < (T)0 ? (T)0 : a0;" : "return a0;"
        case .abs: body = signed ? "return a0 < (T)0 ? kiln_neg(a0) : a0;" : "return a0;"
        case .neg: body = "return kiln_neg(a0);"
        case .sign:
            body = signed ? "return a0 > (T)0 ? (T)1 : (a0 < (T)0 ? (T)-1 : (T)0);" : "return a0 > (T)0 ? (T)1 : (T)0;"
        case .bitwiseNot: body = "return (T)~a0;"
        case .shrink(let bias, let lambda):
            // Exact in double, then back with the cast's truncation, as the CPU kernel.
            params = [("double", .float64(Double(bias))), ("double", .float64(Double(lambda)))]
            let x = try PointwiseHelpers.convert("a0", from: dtype, to: .float64)
            let back = try PointwiseHelpers.convert("r", from: .float64, to: dtype)
            body = """
                const double x = \(x);
                    const double r = x < -p1 ? x + p0 : (x > p1 ? x - p0 : 0.0);
                    return \(back);
                """
        default: throw KilnError.unsupported("\(op) of \(dtype.onnxName)")
        }
        let function = PointwiseFunction(
            name: name, inputs: [dtype], output: dtype, parameterTypes: params.map(\.0), body: "    " + body)
        return (function, params.map(\.1))
    }

    /// Clip of `dtype` with each bound from an input (a one-element operand) or a parameter value.
    static func clip(_ dtype: DType, lowFromInput: Bool, highFromInput: Bool) throws -> PointwiseFunction {
        _ = try CUDAPrelude.requireTypeName(dtype)
        guard PointwiseHelpers.isFloat(dtype) || dtype.isInteger else {
            throw KilnError.unsupported("clip of \(dtype.onnxName)")
        }
        let paramType = PointwiseHelpers.isFloat(dtype) ? (dtype == .float32 ? "float" : "double") : "long long"
        var inputs = [dtype]
        var params: [String] = []
        func bound(_ fromInput: Bool) -> String {
            if fromInput {
                inputs.append(dtype)
                return "a\(inputs.count - 1)"
            }
            params.append(paramType)
            return "(T)p\(params.count - 1)"
        }
        let low = bound(lowFromInput)
        let high = bound(highFromInput)
        // Clamping below first makes min > max give max, as ONNX and the CPU kernel.
        let body = """
                const T lo = \(low);
                const T hi = \(high);
                const T y = a0 < lo ? lo : a0;
                return y > hi ? hi : y;
            """
        let tag = (lowFromInput ? "i" : "p") + (highFromInput ? "i" : "p")
        return PointwiseFunction(
            name: "clip\(tag)_\(dtype)", inputs: inputs, output: dtype, parameterTypes: params,
            body: body)
    }
}
