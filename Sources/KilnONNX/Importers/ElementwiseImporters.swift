import KilnIR

/// Pointwise operators: unary math, activations, binary arithmetic/logic/comparison, variadic reductions across
/// inputs, Where, Clip and Cast. They map onto a handful of layers (`pointwise.unary`, `pointwise.binary`,
/// `pointwise.variadic`, `pointwise.clip`, `select`, `cast`).
enum ElementwiseImporters {
    static let table: [OperatorImporter] = unary + activations + binary + others

    private static func unary(_ op: String, _ u: UnaryOp, since: Int = 1) -> OperatorImporter {
        .layer(op, since: since) { _ in UnaryLayer(u) }
    }

    static let unary: [OperatorImporter] = [
        unary("Abs", .abs), unary("Neg", .neg), unary("Exp", .exp), unary("Log", .log), unary("Sqrt", .sqrt),
        unary("Reciprocal", .reciprocal), unary("Floor", .floor), unary("Ceil", .ceil),
        unary("Round", .round, since: 11), unary("Sign", .sign, since: 9),
        unary("Sin", .sin, since: 7), unary("Cos", .cos, since: 7), unary("Tan", .tan, since: 7),
        unary("Asin", .asin, since: 7), unary("Acos", .acos, since: 7), unary("Atan", .atan, since: 7),
        unary("Sinh", .sinh, since: 9), unary("Cosh", .cosh, since: 9), unary("Tanh", .tanh),
        unary("Asinh", .asinh, since: 9), unary("Acosh", .acosh, since: 9), unary("Atanh", .atanh, since: 9),
        unary("Erf", .erf, since: 9), unary("IsNaN", .isNaN, since: 9), unary("Not", .not),
        unary("BitwiseNot", .bitwiseNot, since: 18),
        .layer("IsInf", since: 10) { c in
            UnaryLayer(.isInf(negative: try c.int("detect_negative", default: 1) != 0,
                              positive: try c.int("detect_positive", default: 1) != 0))
        },
    ]

    static let activations: [OperatorImporter] = [
        unary("Relu", .relu), unary("Sigmoid", .sigmoid), unary("Softsign", .softsign),
        unary("Softplus", .softplus), unary("HardSwish", .hardSwish, since: 14), unary("Mish", .mish, since: 18),
        .layer("LeakyRelu") { c in UnaryLayer(.leakyRelu(alpha: try c.float("alpha", default: 0.01))) },
        .layer("Elu") { c in UnaryLayer(.elu(alpha: try c.float("alpha", default: 1))) },
        .layer("Selu") { c in
            UnaryLayer(.selu(alpha: try c.float("alpha", default: 1.67326319217681884765625),
                             gamma: try c.float("gamma", default: 1.05070102214813232421875)))
        },
        .layer("Celu", since: 12) { c in UnaryLayer(.celu(alpha: try c.float("alpha", default: 1))) },
        .layer("HardSigmoid") { c in
            UnaryLayer(.hardSigmoid(alpha: try c.float("alpha", default: 0.2), beta: try c.float("beta", default: 0.5)))
        },
        .layer("ThresholdedRelu", since: 10) { c in UnaryLayer(.thresholdedRelu(alpha: try c.float("alpha", default: 1))) },
        .layer("Shrink", since: 9) { c in
            UnaryLayer(.shrink(bias: try c.float("bias", default: 0), lambda: try c.float("lambd", default: 0.5)))
        },
        .layer("Gelu", since: 20) { c in
            switch try c.string("approximate", default: "none") {
            case "none": return UnaryLayer(.gelu(tanh: false))
            case "tanh": return UnaryLayer(.gelu(tanh: true))
            case let other: throw c.invalid("Gelu approximate='\(other)' is not 'none' or 'tanh'")
            }
        },
        .layer("PRelu") { c in try legacyBroadcast(c, BinaryLayer(.prelu)) },
        OperatorImporter("Clip") { c in
            if c.version < 11 {
                let low = c.has("min") ? Double(try c.float("min")) : nil
                let high = c.has("max") ? Double(try c.float("max")) : nil
                c.emit(ClipLayer(min: low, max: high), inputs: Array(c.inputs.prefix(1)))
            } else {
                c.emit(ClipLayer())
            }
        },
    ]

    private static func binary(_ op: String, _ b: BinaryOp, since: Int = 1) -> OperatorImporter {
        .layer(op, since: since) { c in try legacyBroadcast(c, BinaryLayer(b)) }
    }

    static let binary: [OperatorImporter] = [
        binary("Add", .add), binary("Sub", .sub), binary("Mul", .mul), binary("Div", .div), binary("Pow", .pow),
        binary("And", .and), binary("Or", .or), binary("Xor", .xor),
        binary("BitwiseAnd", .and, since: 18), binary("BitwiseOr", .or, since: 18),
        binary("BitwiseXor", .xor, since: 18),
        binary("Equal", .equal), binary("Less", .less), binary("Greater", .greater),
        binary("LessOrEqual", .lessOrEqual, since: 12), binary("GreaterOrEqual", .greaterOrEqual, since: 12),
        .layer("Mod", since: 10) { c in BinaryLayer(.mod(fmod: try c.int("fmod", default: 0) != 0)) },
        .layer("BitShift", since: 11) { c in
            switch try c.string("direction") {
            case "LEFT": return BinaryLayer(.shiftLeft)
            case "RIGHT": return BinaryLayer(.shiftRight)
            case let other: throw c.invalid("BitShift direction '\(other)' is not LEFT or RIGHT")
            }
        },
    ]

    static let others: [OperatorImporter] = [
        .layer("Sum") { _ in VariadicLayer(.sum) },
        .layer("Mean") { _ in VariadicLayer(.mean) },
        .layer("Max") { _ in VariadicLayer(.max) },
        .layer("Min") { _ in VariadicLayer(.min) },
        .layer("Where", since: 9) { _ in SelectLayer() },
        .layer("Cast") { c in
            CastLayer(to: try castTarget(c), saturate: try c.int("saturate", default: 1) != 0,
                      rounding: try rounding(c))
        },
        OperatorImporter("CastLike", since: 15) { c in
            guard let target = c.inputType(1)?.tensorType?.dtype else {
                throw c.unsupported("CastLike needs the static element type of its second input")
            }
            let layer = CastLayer(to: target, saturate: try c.int("saturate", default: 1) != 0,
                                  rounding: try rounding(c))
            c.emit(layer, inputs: Array(c.inputs.prefix(1)))
        },
    ]

    /// Before opset 7, binary ops broadcast only with `broadcast=1`, and `axis` aligned the second input at
    /// a given axis instead of the end. Suffix alignment is numpy's rule; other alignments are not supported.
    private static func legacyBroadcast(_ c: ImportContext, _ layer: BinaryLayer) throws -> BinaryLayer {
        guard c.version < 7, try c.int("broadcast", default: 0) != 0, let axis = try c.optionalInt("axis") else {
            return layer
        }
        guard let a = c.inputType(0)?.tensorType?.rank, let b = c.inputType(1)?.tensorType?.rank else {
            throw c.unsupported("legacy broadcast with axis=\(axis) needs both input ranks")
        }
        let normalized = axis < 0 ? axis + a : axis
        guard normalized + b == a else {
            throw c.unsupported("legacy broadcast with axis=\(axis) that is not suffix-aligned")
        }
        return layer
    }

    private static func castTarget(_ c: ImportContext) throws -> DType {
        // Cast-1 spelled the target as a string such as "FLOAT".
        if case .string(let name)? = c.attribute("to") {
            let spelled = name.lowercased()
            let aliases = ["float": DType.float32, "double": .float64, "float16": .float16]
            guard let dtype = aliases[spelled] ?? DType(name: spelled) else {
                throw c.invalid("Cast to unknown type '\(name)'")
            }
            return dtype
        }
        let code = try c.int("to")
        guard let dtype = DType(rawValue: code) else { throw c.unsupported("Cast to element type \(code)") }
        return dtype
    }

    private static func rounding(_ c: ImportContext) throws -> E8M0Rounding {
        let mode = try c.string("round_mode", default: "up")
        guard let rounding = E8M0Rounding(rawValue: mode) else {
            throw c.invalid("round_mode '\(mode)' is not up, down or nearest")
        }
        return rounding
    }
}
