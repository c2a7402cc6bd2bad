import KilnIR

// One struct per formula so each is specialised and inlined into the loop of `mapUnary`.

struct Map<T: TensorScalar, U: TensorScalar>: UnaryFunction {
    let body: (T) -> U
    @inline(__always) func callAsFunction(_ x: T) -> U { body(x) }
}

struct ReluFn<T: KernelNumber>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { x < T.zero ? T.zero : x }
}

struct AbsFn<T: KernelNumber>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.magnitude(x) }
}

struct NegFn<T: KernelNumber>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.negate(x) }
}

struct SignFn<T: KernelNumber>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { x > T.zero ? T.one : (x < T.zero ? T.negate(T.one) : x) }
}

struct LeakyReluFn<T: KernelReal>: UnaryFunction {
    let alpha: T
    @inline(__always) func callAsFunction(_ x: T) -> T { x < 0 ? alpha * x : x }
}

struct SigmoidFn<T: KernelReal>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T {
        // Split by sign so exp never overflows.
        if x >= 0 { return 1 / (1 + T.exp(-x)) }
        let e = T.exp(x)
        return e / (1 + e)
    }
}

struct TanhFn<T: KernelReal>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.tanh(x) }
}

struct ExpFn<T: KernelReal>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.exp(x) }
}

struct HardSigmoidFn<T: KernelReal>: UnaryFunction {
    let alpha: T
    let beta: T
    @inline(__always) func callAsFunction(_ x: T) -> T { Swift.max(0, Swift.min(1, alpha * x + beta)) }
}

struct HardSwishFn<T: KernelReal>: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: T) -> T { x * Swift.max(0, Swift.min(1, x / 6 + 0.5)) }
}

struct ClampFn<T: KernelNumber>: UnaryFunction {
    let low: T
    let high: T
    @inline(__always) func callAsFunction(_ x: T) -> T {
        // Clamping below first makes min > max give max, as ONNX specifies.
        let y = x < low ? low : x
        return y > high ? high : y
    }
}

struct GeluFn<T: KernelReal>: UnaryFunction {
    let approximate: Bool
    @inline(__always) func callAsFunction(_ x: T) -> T {
        if approximate {
            let inner = T(Float(0.7978845608028654)) * (x + T(Float(0.044715)) * x * x * x)
            return 0.5 * x * (1 + T.tanh(inner))
        }
        return 0.5 * x * (1 + T.erf(x * T(Float(0.7071067811865476))))
    }
}

/// The less common formulas, dispatched per element; their cost is in the math library call anyway.
struct GeneralUnaryFn<T: KernelReal>: UnaryFunction {
    let op: UnaryOp

    func callAsFunction(_ x: T) -> T {
        switch op {
        case .log: return T.log(x)
        case .sqrt: return x.squareRoot()
        case .reciprocal: return 1 / x
        case .floor: return x.rounded(.down)
        case .ceil: return x.rounded(.up)
        case .round: return x.rounded(.toNearestOrEven)
        case .sin: return T.sin(x)
        case .cos: return T.cos(x)
        case .tan: return T.tan(x)
        case .asin: return T.asin(x)
        case .acos: return T.acos(x)
        case .atan: return T.atan(x)
        case .sinh: return T.sinh(x)
        case .cosh: return T.cosh(x)
        case .asinh: return T.asinh(x)
        case .acosh: return T.acosh(x)
        case .atanh: return T.atanh(x)
        case .erf: return T.erf(x)
        case .elu(let a): return x < 0 ? T(a) * (T.exp(x) - 1) : x
        case .selu(let a, let g): return x <= 0 ? T(g) * (T(a) * T.exp(x) - T(a)) : T(g) * x
        case .celu(let a):
            let alpha = T(a)
            return Swift.max(0, x) + Swift.min(0, alpha * (T.exp(x / alpha) - 1))
        case .softplus: return softplus(x)
        case .softsign: return x / (1 + Swift.abs(x))
        case .mish: return x * T.tanh(softplus(x))
        case .thresholdedRelu(let a): return x > T(a) ? x : 0
        case .shrink(let bias, let lambda):
            if x < -T(lambda) { return x + T(bias) }
            return x > T(lambda) ? x - T(bias) : 0
        default: return .nan
        }
    }

    /// log(1 + e^x) without overflow for large x.
    @inline(__always) private func softplus(_ x: T) -> T {
        x > 0 ? x + T.log1p(T.exp(-x)) : T.log1p(T.exp(x))
    }
}

/// Receives the specialised function of a unary op on reals (`withRealUnary`), so one switch serves every
/// loop that runs such functions: whole tensors here, chunks of a fused chain in `FusedPointwiseLoop`.
protocol RealUnaryConsumer {
    associatedtype T: KernelReal
    associatedtype Result
    func callAsFunction<F: UnaryFunction>(_ f: F) throws -> Result where F.In == T
}

/// Calls `consumer` with the function of `op` on `C.T`; the boolean and integer-only ops throw.
func withRealUnary<C: RealUnaryConsumer>(_ op: UnaryOp, _ consumer: C) throws -> C.Result {
    typealias T = C.T
    switch op {
    case .relu: return try consumer(ReluFn<T>())
    case .abs: return try consumer(AbsFn<T>())
    case .neg: return try consumer(NegFn<T>())
    case .sign: return try consumer(SignFn<T>())
    case .exp: return try consumer(ExpFn<T>())
    case .tanh: return try consumer(TanhFn<T>())
    case .sigmoid: return try consumer(SigmoidFn<T>())
    case .leakyRelu(let a): return try consumer(LeakyReluFn<T>(alpha: T(a)))
    case .hardSigmoid(let a, let b): return try consumer(HardSigmoidFn<T>(alpha: T(a), beta: T(b)))
    case .hardSwish: return try consumer(HardSwishFn<T>())
    case .gelu(let tanh): return try consumer(GeluFn<T>(approximate: tanh))
    case .isNaN: return try consumer(Map<T, Bool>(body: { $0.isNaN }))
    case .isInf(let negative, let positive):
        return try consumer(Map<T, Bool>(body: { $0.isInfinite && ($0 < 0 ? negative : positive) }))
    case .not, .bitwiseNot:
        throw KilnError.typeMismatch("\(op) is not defined on \(T.dtype.onnxName)")
    default: return try consumer(GeneralUnaryFn<T>(op: op))
    }
}

/// Runs a float-only or mixed unary op on a tensor already in its compute type (float, double or integer).
struct UnaryDispatch: KernelNumberVisitor {
    let op: UnaryOp
    let x: Tensor
    let threads: Int

    private struct WholeTensor<T: KernelReal>: RealUnaryConsumer {
        let x: Tensor
        let threads: Int
        func callAsFunction<F: UnaryFunction>(_ f: F) -> Tensor where F.In == T { runUnary(f, x, threads: threads) }
    }

    func visitReal<T: KernelReal>(_ type: T.Type) throws -> Tensor {
        try withRealUnary(op, WholeTensor<T>(x: x, threads: threads))
    }

    func visitInteger<T: KernelNumber & FixedWidthInteger>(_ type: T.Type) throws -> Tensor {
        switch op {
        case .relu: return runUnary(ReluFn<T>(), x, threads: threads)
        case .abs: return runUnary(AbsFn<T>(), x, threads: threads)
        case .neg: return runUnary(NegFn<T>(), x, threads: threads)
        case .sign: return runUnary(SignFn<T>(), x, threads: threads)
        case .bitwiseNot: return runUnary(Map<T, T>(body: { ~$0 }), x, threads: threads)
        default: throw KilnError.typeMismatch("\(op) is not defined on \(x.dtype.onnxName)")
        }
    }
}

enum ElementwiseUnary {
    /// Computes `op` on `x` of any supported dtype; float16 and bfloat16 go through float32.
    static func apply(_ op: UnaryOp, _ x: Tensor, threads: Int) throws -> Tensor {
        if op == .not {
            guard x.dtype == .bool else { throw KilnError.typeMismatch("not is not defined on \(x.dtype.onnxName)") }
            return runUnary(Map<Bool, Bool>(body: { !$0 }), x, threads: threads)
        }
        if case .shrink = op, x.dtype.isInteger {
            // Integer Shrink: exact in double, then back (bias and lambda are floats in ONNX).
            return try apply(op, x.cast(to: .float64), threads: threads).cast(to: x.dtype)
        }
        let compute = x.dtype.computeType
        let input = compute == x.dtype ? x : try x.cast(to: compute)
        let result = try compute.visitKernelNumber(UnaryDispatch(op: op, x: input, threads: threads))
        return result.dtype == compute && compute != x.dtype ? try result.cast(to: x.dtype) : result
    }

    /// Clamps `x` to [low, high]; nil bounds do not clamp. Bounds are one-element tensors of any numeric type.
    static func clip(_ x: Tensor, low: Tensor?, high: Tensor?, threads: Int) throws -> Tensor {
        let compute = x.dtype.computeType
        let input = compute == x.dtype ? x : try x.cast(to: compute)
        for bound in [low, high] {
            if let bound, bound.count != 1 {
                throw KilnError.invalidArgument("clip bounds must have one element, got shape \(bound.shape)")
            }
        }
        let lo = try low?.cast(to: compute)
        let hi = try high?.cast(to: compute)
        let result = try compute.visitKernelNumber(ClipDispatch(x: input, low: lo, high: hi, threads: threads))
        return compute != x.dtype ? try result.cast(to: x.dtype) : result
    }
}

private struct ClipDispatch: KernelNumberVisitor {
    let x: Tensor
    let low: Tensor?
    let high: Tensor?
    let threads: Int

    func visitReal<T: KernelReal>(_ type: T.Type) throws -> Tensor { run(T.self) }
    func visitInteger<T: KernelNumber & FixedWidthInteger>(_ type: T.Type) throws -> Tensor { run(T.self) }

    private func run<T: KernelNumber>(_ type: T.Type) -> Tensor {
        let lo = low.map { $0.withUnsafeBuffer(as: T.self) { $0[0] } } ?? T.lowest
        let hi = high.map { $0.withUnsafeBuffer(as: T.self) { $0[0] } } ?? T.highest
        return runUnary(ClampFn<T>(low: lo, high: hi), x, threads: threads)
    }
}
