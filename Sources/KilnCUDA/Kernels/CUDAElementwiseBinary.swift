import KilnIR

/// `pointwise.binary`, `pointwise.variadic`, `select` and `cast` as `PointwiseFunction`s, with the CPU
/// kernels' semantics (ElementwiseBinaryKernels, ElementwiseNumbers, Tensor+Cast).
enum PointwiseBinary {
    static func opName(_ op: BinaryOp) -> String { op.description }

    /// `op` of `a` and `b` (the same dtype except for pow's exponent), or `unsupported`.
    static func function(_ op: BinaryOp, _ a: DType, _ b: DType) throws -> PointwiseFunction {
        _ = try CUDAPrelude.requireTypeName(a)
        _ = try CUDAPrelude.requireTypeName(b)
        if case .pow = op {
        } else if a != b {
            throw KilnError.unsupported("\(op) of \(a.onnxName) and \(b.onnxName)")
        }
        let name = "\(opName(op))_\(a)" + (a == b ? "" : "_\(b)")
        let output: DType = op.isComparison ? .bool : a
        let body: String
        if let comparison = comparison(op) {
            body = "return a0 \(comparison) a1;"
        } else if a == .bool {
            body = try boolean(op)
        } else if PointwiseHelpers.isFloat(a) {
            body = try float(op, a, b)
        } else if a.isInteger {
            body = try integer(op, a, b)
        } else {
            throw KilnError.unsupported("\(op) of \(a.onnxName)")
        }
        return PointwiseFunction(name: name, inputs: [a, b], output: output, body: "    " + body)
    }

    private static func comparison(_ op: BinaryOp) -> String? {
        switch op {
        case .equal: "=="
        case .less: "<"
        case .greater: ">"
        case .lessOrEqual: "<="
        case .greaterOrEqual: ">="
        default: nil
        }
    }

    /// Logical on bool (as the CPU's uint8 route: max is or, min is and).
    private static func boolean(_ op: BinaryOp) throws -> String {
        switch op {
        case .and, .min: "return a0 && a1;"
        case .or, .max: "return a0 || a1;"
        case .xor: "return a0 != a1;"
        default: throw KilnError.unsupported("\(op) of bool")
        }
    }

    private static func float(_ op: BinaryOp, _ a: DType, _ b: DType) throws -> String {
        func m(_ f: String) -> String { PointwiseHelpers.math(f, a) }
        switch op {
        case .add: return "return a0 + a1;"
        case .sub: return "return a0 - a1;"
        case .mul: return "return a0 * a1;"
        case .div: return "return a0 / a1;"
        case .pow:
            // The exponent converts to the base's dtype first, as the CPU kernel.
            return "return \(m("pow"))(a0, \(try PointwiseHelpers.convert("a1", from: b, to: a)));"
        case .mod(let fmod):
            if fmod { return "return \(m("fmod"))(a0, a1);" }
            return """
                const T r = \(m("fmod"))(a0, a1);
                    if (r != r) return r;
                    if (r == (T)0) return \(m("copysign"))((T)0, a1);
                    return ((r < (T)0) != (a1 < (T)0)) ? r + a1 : r;
                """
        case .max: return "return kiln_nanmax(a0, a1);"
        case .min: return "return kiln_nanmin(a0, a1);"
        case .prelu: return "return a0 < (T)0 ? a1 * a0 : a0;"
        default: throw KilnError.unsupported("\(op) of \(a.onnxName)")
        }
    }

    private static func integer(_ op: BinaryOp, _ a: DType, _ b: DType) throws -> String {
        let signed = a.isSignedInteger
        switch op {
        case .add: return "return kiln_add(a0, a1);"
        case .sub: return "return kiln_sub(a0, a1);"
        case .mul: return "return kiln_mul(a0, a1);"
        case .div: return signed ? "return kiln_sdiv(a0, a1);" : "return kiln_udiv(a0, a1);"
        case .mod(let fmod):
            guard signed else { return "return a1 == (T)0 ? (T)0 : (T)(a0 % a1);" }
            // x % 0 is 0 and MIN % -1 (0 in math) must not trap.
            let adjust = fmod ? "" : "\n    if (r != (T)0 && ((r < (T)0) != (a1 < (T)0))) r = kiln_add(r, a1);"
            return "if (a1 == (T)0 || a1 == (T)-1) return (T)0;\n    T r = (T)(a0 % a1);\(adjust)\n    return r;"
        case .max: return "return kiln_smax(a0, a1);"
        case .min: return "return kiln_smin(a0, a1);"
        case .prelu: return signed ? "return a0 < (T)0 ? kiln_mul(a1, a0) : a0;" : "return a0;"
        case .and: return "return (T)(a0 & a1);"
        case .or: return "return (T)(a0 | a1);"
        case .xor: return "return (T)(a0 ^ a1);"
        case .shiftLeft, .shiftRight:
            let left = op == .shiftLeft
            let bits = a.byteSize * 8
            // The count's bit pattern read as unsigned (signed counts masked to the width first), as the CPU.
            let count =
                signed
                ? "(u64)(long long)a1 & (~0ULL >> \(64 - bits))" : "(u64)a1"
            let outside = left || !signed ? "(T)0" : "(a0 < (T)0 ? (T)-1 : (T)0)"
            let shift = left ? "(T)((typename KilnWide<T>::type)a0 << c)" : "(T)(a0 >> c)"
            return "const u64 c = \(count);\n    if (c >= \(bits)ULL) return \(outside);\n    return \(shift);"
        case .pow:
            if PointwiseHelpers.isFloat(b) {
                // Integer base, float exponent: pow in double, then the cast's truncation.
                let x = try PointwiseHelpers.convert("a0", from: a, to: .float64)
                let y = try PointwiseHelpers.convert("a1", from: b, to: .float64)
                let back = try PointwiseHelpers.convert("r", from: .float64, to: a)
                return "const double r = pow(\(x), \(y));\n    return \(back);"
            }
            let e = try PointwiseHelpers.convert("a1", from: b, to: a)
            let negative =
                signed
                ? """
                if (e < (T)0) {
                        if (a0 == (T)1) return (T)1;
                        if (a0 == (T)-1) return (e & 1) == 0 ? (T)1 : a0;
                        return (T)0;
                    }
                """ : ""
            return """
                T e = \(e);
                    \(negative)
                    T result = (T)1, base = a0;
                    while (e > (T)0) {
                        if (e & 1) result = kiln_mul(result, base);
                        base = kiln_mul(base, base);
                        e = (T)(e >> 1);
                    }
                    return result;
                """
        default: throw KilnError.unsupported("\(op) of \(a.onnxName)")
        }
    }

    /// Sum, max or min of `count` inputs folded left to right (as the CPU's pairwise fold); `divide` then
    /// divides by parameter 0 (mean).
    static func variadic(_ op: VariadicOp, _ dtype: DType, count: Int, divide: Bool) throws -> PointwiseFunction {
        _ = try CUDAPrelude.requireTypeName(dtype)
        let isFloat = PointwiseHelpers.isFloat(dtype)
        guard isFloat || dtype.isInteger, count >= 1 else {
            throw KilnError.unsupported("\(op.rawValue) of \(dtype.onnxName)")
        }
        func fold(_ x: String, _ y: String) -> String {
            switch op {
            case .sum, .mean: isFloat ? "(\(x) + \(y))" : "kiln_add(\(x), \(y))"
            case .max: isFloat ? "kiln_nanmax(\(x), \(y))" : "kiln_smax(\(x), \(y))"
            case .min: isFloat ? "kiln_nanmin(\(x), \(y))" : "kiln_smin(\(x), \(y))"
            }
        }
        var expression = "a0"
        for i in 1..<count { expression = fold(expression, "a\(i)") }
        var body = "    const T s = \(expression);\n"
        var params: [String] = []
        if divide {
            params = [isFloat ? (dtype == .float32 ? "float" : "double") : "long long"]
            let div = isFloat ? "s / (T)p0" : (dtype.isSignedInteger ? "kiln_sdiv(s, (T)p0)" : "kiln_udiv(s, (T)p0)")
            body += "    return \(div);"
        } else {
            body += "    return s;"
        }
        let opName = divide ? "mean" : (op == .mean ? "sum" : op.rawValue)
        return PointwiseFunction(
            name: "\(opName)\(count)_\(dtype)", inputs: Array(repeating: dtype, count: count), output: dtype,
            parameterTypes: params, body: body)
    }

    /// `condition ? x : y`.
    static func select(_ dtype: DType) throws -> PointwiseFunction {
        _ = try CUDAPrelude.requireTypeName(dtype)
        return PointwiseFunction(
            name: "select_\(dtype)", inputs: [.bool, dtype, dtype], output: dtype, body: "    return a0 ? a1 : a2;")
    }

    /// Conversion from `source` to `target` as `Tensor.cast`.
    static func cast(_ source: DType, _ target: DType) throws -> PointwiseFunction {
        let expression = try PointwiseHelpers.convert("a0", from: source, to: target)
        return PointwiseFunction(
            name: "cast_\(source)_\(target)", inputs: [source], output: target, body: "    return \(expression);")
    }
}
