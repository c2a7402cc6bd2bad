import KilnIR

// One struct per formula so `runBinary` specialises and inlines each.

struct AddFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.add(a, b) }
}

struct SubFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.sub(a, b) }
}

struct MulFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.mul(a, b) }
}

struct DivFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.div(a, b) }
}

struct MaxFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.maximum(a, b) }
}

struct MinFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.minimum(a, b) }
}

struct ModFn<T: KernelNumber>: BinaryFunction {
    let fmod: Bool
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.mod(a, b, fmod: fmod) }
}

struct PReluFn<T: KernelNumber>: BinaryFunction {
    @inline(__always) func callAsFunction(_ x: T, _ slope: T) -> T { x < T.zero ? T.mul(slope, x) : x }
}

struct RealPowFn<T: KernelReal>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.pow(a, b) }
}

/// Integer powers by repeated squaring with wrap-around; negative exponents follow integer division (0 unless
/// the base is 1 or -1).
struct IntegerPowFn<T: KernelNumber & FixedWidthInteger>: BinaryFunction {
    func callAsFunction(_ a: T, _ b: T) -> T {
        if b < 0 {
            if a == 1 { return 1 }
            if T.isSigned && a == 0 &- 1 { return b & 1 == 0 ? 1 : a }
            return 0
        }
        var result: T = 1
        var base = a
        var e = b
        while e > 0 {
            if e & 1 == 1 { result = result &* base }
            base = base &* base
            e >>= 1
        }
        return result
    }
}

/// Shifts by the count's bit pattern read as unsigned, so negative counts behave as huge ones: everything
/// shifts out (right shifts of negative signed values fill with ones, as arithmetic shifts do).
struct ShiftFn<T: KernelNumber & FixedWidthInteger>: BinaryFunction {
    let left: Bool
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T {
        let count = UInt64(truncatingIfNeeded: b) & (T.isSigned ? UInt64.max >> (64 - T.bitWidth) : UInt64.max)
        if count >= UInt64(T.bitWidth) { return left || a >= 0 ? 0 : 0 &- 1 }
        return left ? a << count : a >> count
    }
}

struct AndFn<T: FixedWidthInteger & TensorScalar>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a & b }
}

struct OrFn<T: FixedWidthInteger & TensorScalar>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a | b }
}

struct XorFn<T: FixedWidthInteger & TensorScalar>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a ^ b }
}

struct EqualFn<T: TensorScalar & Equatable>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a == b }
}

struct LessFn<T: TensorScalar & Comparable>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a < b }
}

struct GreaterFn<T: TensorScalar & Comparable>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a > b }
}

struct LessOrEqualFn<T: TensorScalar & Comparable>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a <= b }
}

struct GreaterOrEqualFn<T: TensorScalar & Comparable>: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a >= b }
}

/// Receives the specialised function of a binary op (`withCommonBinary`, `withRealBinary`), so one switch
/// serves every loop that runs such functions: whole tensors here, chunks of a fused chain in
/// `FusedPointwiseLoop`.
protocol NumberBinaryConsumer {
    associatedtype T: KernelNumber
    associatedtype Result
    func callAsFunction<F: BinaryFunction>(_ f: F) throws -> Result where F.In == T
}

/// Calls `consumer` with the function of an op every number type has: arithmetic, max/min, mod, PRelu and
/// the comparisons; the rest throw.
func withCommonBinary<C: NumberBinaryConsumer>(_ op: BinaryOp, _ consumer: C) throws -> C.Result {
    typealias T = C.T
    switch op {
    case .add: return try consumer(AddFn<T>())
    case .sub: return try consumer(SubFn<T>())
    case .mul: return try consumer(MulFn<T>())
    case .div: return try consumer(DivFn<T>())
    case .max: return try consumer(MaxFn<T>())
    case .min: return try consumer(MinFn<T>())
    case .mod(let fmod): return try consumer(ModFn<T>(fmod: fmod))
    case .prelu: return try consumer(PReluFn<T>())
    case .equal: return try consumer(EqualFn<T>())
    case .less: return try consumer(LessFn<T>())
    case .greater: return try consumer(GreaterFn<T>())
    case .lessOrEqual: return try consumer(LessOrEqualFn<T>())
    case .greaterOrEqual: return try consumer(GreaterOrEqualFn<T>())
    default: throw KilnError.typeMismatch("\(op) is not defined on \(T.dtype.onnxName)")
    }
}

/// `withCommonBinary` on reals, with pow.
func withRealBinary<C: NumberBinaryConsumer>(_ op: BinaryOp, _ consumer: C) throws -> C.Result where C.T: KernelReal {
    if case .pow = op { return try consumer(RealPowFn<C.T>()) }
    return try withCommonBinary(op, consumer)
}

struct BinaryDispatch: KernelNumberVisitor {
    let op: BinaryOp
    let a: Tensor
    let b: Tensor
    let threads: Int

    private struct WholeTensors<T: KernelNumber>: NumberBinaryConsumer {
        let a: Tensor
        let b: Tensor
        let threads: Int
        func callAsFunction<F: BinaryFunction>(_ f: F) throws -> Tensor where F.In == T {
            try runBinary(f, a, b, threads: threads)
        }
    }

    func visitReal<T: KernelReal>(_ type: T.Type) throws -> Tensor {
        try withRealBinary(op, WholeTensors<T>(a: a, b: b, threads: threads))
    }

    func visitInteger<T: KernelNumber & FixedWidthInteger>(_ type: T.Type) throws -> Tensor {
        switch op {
        case .pow: return try runBinary(IntegerPowFn<T>(), a, b, threads: threads)
        case .shiftLeft: return try runBinary(ShiftFn<T>(left: true), a, b, threads: threads)
        case .shiftRight: return try runBinary(ShiftFn<T>(left: false), a, b, threads: threads)
        case .and: return try runBinary(AndFn<T>(), a, b, threads: threads)
        case .or: return try runBinary(OrFn<T>(), a, b, threads: threads)
        case .xor: return try runBinary(XorFn<T>(), a, b, threads: threads)
        default: return try withCommonBinary(op, WholeTensors<T>(a: a, b: b, threads: threads))
        }
    }
}

enum ElementwiseBinary {
    /// Computes `op` with broadcasting for every dtype ONNX defines it on.
    static func apply(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, threads: Int) throws -> Tensor {
        if case .pow = op { return try pow(a, b, threads: threads) }
        guard a.dtype == b.dtype else {
            throw KilnError.typeMismatch("\(op) of \(a.dtype.onnxName) and \(b.dtype.onnxName)")
        }
        if a.dtype == .bool { return try boolean(op, a, b, threads: threads) }
        if a.dtype == .string {
            guard op == .equal else { throw KilnError.typeMismatch("\(op) is not defined on strings") }
            return try equalStrings(a, b)
        }
        let compute = a.dtype.computeType
        if compute != a.dtype {
            let result = try apply(op, a.cast(to: compute), b.cast(to: compute), threads: threads)
            return op.isComparison ? result : try result.cast(to: a.dtype)
        }
        return try compute.visitKernelNumber(BinaryDispatch(op: op, a: a, b: b, threads: threads))
    }

    /// Pow keeps the base's dtype whatever the exponent's: float bases compute in their own precision, integer
    /// bases with integer exponents exactly, integer bases with float exponents in double then truncate.
    private static func pow(_ a: Tensor, _ b: Tensor, threads: Int) throws -> Tensor {
        let base = a.dtype.computeType
        if base.isFloatingPoint || !b.dtype.isFloatingPoint {
            let result = try base.visitKernelNumber(
                BinaryDispatch(op: .pow, a: a.cast(to: base), b: b.cast(to: base), threads: threads))
            return result.dtype == a.dtype ? result : try result.cast(to: a.dtype)
        }
        let result = try runBinary(RealPowFn<Double>(), a.cast(to: .float64), b.cast(to: .float64), threads: threads)
        return try result.cast(to: a.dtype)
    }

    private static func boolean(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, threads: Int) throws -> Tensor {
        // Bool is one byte 0 or 1, so the bitwise integer kernels give the logical results.
        let x = try a.cast(to: .uint8)
        let y = try b.cast(to: .uint8)
        switch op {
        case .and: return try runBinary(AndFn<UInt8>(), x, y, threads: threads).cast(to: .bool)
        case .or: return try runBinary(OrFn<UInt8>(), x, y, threads: threads).cast(to: .bool)
        case .xor: return try runBinary(XorFn<UInt8>(), x, y, threads: threads).cast(to: .bool)
        case .equal: return try runBinary(EqualFn<UInt8>(), x, y, threads: threads)
        case .less, .greater, .lessOrEqual, .greaterOrEqual, .max, .min:
            return try apply(op, x, y, threads: threads).cast(to: .bool)
        default: throw KilnError.typeMismatch("\(op) is not defined on bool")
        }
    }

    private static func equalStrings(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let plan = try BroadcastPlan([a.shape, b.shape])
        let sa = a.strings
        let sb = b.strings
        let ia = broadcastIndices(plan, input: 0)
        let ib = broadcastIndices(plan, input: 1)
        let result = (0..<plan.count).map { sa[ia[$0]] == sb[ib[$0]] }
        return Tensor(shape: plan.shape, scalars: result)
    }
}
