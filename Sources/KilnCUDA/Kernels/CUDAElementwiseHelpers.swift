import KilnIR

/// CUDA C helpers every pointwise module starts with (after the prelude), and the Swift side that spells
/// conversions with the CPU backend's exact semantics.
enum PointwiseHelpers {
    /// Vector loads, wrap-around integer arithmetic (done in unsigned so overflow is defined, as the CPU
    /// kernels' `&+`), Swift's `max`/`min` on NaN, numpy's NaN-propagating maximum, and float-to-integer
    /// truncation as `NumpyTruncation` (x86-64 numpy) does it.
    static let text = """
        /* Kiln pointwise helpers */
        template <typename T, int V> struct alignas(sizeof(T) * V) KilnVec { T v[V]; };
        template <typename T> struct KilnWide { typedef unsigned int type; };
        template <> struct KilnWide<long long> { typedef unsigned long long type; };
        template <> struct KilnWide<unsigned long long> { typedef unsigned long long type; };
        template <typename T> __device__ __forceinline__ T kiln_add(T a, T b) {
            typedef typename KilnWide<T>::type W; return (T)((W)a + (W)b);
        }
        template <typename T> __device__ __forceinline__ T kiln_sub(T a, T b) {
            typedef typename KilnWide<T>::type W; return (T)((W)a - (W)b);
        }
        template <typename T> __device__ __forceinline__ T kiln_mul(T a, T b) {
            typedef typename KilnWide<T>::type W; return (T)((W)a * (W)b);
        }
        template <typename T> __device__ __forceinline__ T kiln_neg(T a) {
            typedef typename KilnWide<T>::type W; return (T)((W)0 - (W)a);
        }
        /* Signed division truncates; x / 0 is 0 and MIN / -1 wraps, as the CPU kernels. */
        template <typename T> __device__ __forceinline__ T kiln_sdiv(T a, T b) {
            return b == (T)0 ? (T)0 : (b == (T)-1 ? kiln_neg(a) : (T)(a / b));
        }
        template <typename T> __device__ __forceinline__ T kiln_udiv(T a, T b) {
            return b == (T)0 ? (T)0 : (T)(a / b);
        }
        /* Swift.max / Swift.min: the second operand when the comparison holds, so NaN gives the first. */
        template <typename T> __device__ __forceinline__ T kiln_smax(T x, T y) { return y >= x ? y : x; }
        template <typename T> __device__ __forceinline__ T kiln_smin(T x, T y) { return y < x ? y : x; }
        /* numpy maximum / minimum: NaN in either operand propagates. */
        template <typename T> __device__ __forceinline__ T kiln_nanmax(T a, T b) { return (a > b || a != a) ? a : b; }
        template <typename T> __device__ __forceinline__ T kiln_nanmin(T a, T b) { return (a < b || a != a) ? a : b; }
        /* Float to integer: truncate; targets up to 32 bits (but uint32) go through int32, int64 and uint32
           through int64, uint64 through uint64 or int64; out of range and NaN give the most negative value. */
        __device__ __forceinline__ i64 kiln_trunc32(double v) {
            const double t = trunc(v);
            return (t >= -2147483648.0 && t < 2147483648.0) ? (i64)t : (i64)(-2147483647 - 1);
        }
        __device__ __forceinline__ i64 kiln_trunc64(double v) {
            const double t = trunc(v);
            return (t >= -9.223372036854775808e18 && t < 9.223372036854775808e18) ? (i64)t : (i64)(1ULL << 63);
        }
        __device__ __forceinline__ i64 kiln_truncu64(double v) {
            const double t = trunc(v);
            if (t >= 0.0 && t < 1.8446744073709552e19) return (i64)(u64)t;
            return (t >= -9.223372036854775808e18 && t < 0.0) ? (i64)t : (i64)(1ULL << 63);
        }

        """

    static func isFloat(_ dtype: DType) -> Bool { dtype == .float32 || dtype == .float64 }

    /// `name` for double, `namef` for float: the CUDA math library's spellings.
    static func math(_ name: String, _ dtype: DType) -> String { dtype == .float32 ? name + "f" : name }

    /// The truncation helper for a float-to-`target` conversion.
    static func truncation(to target: DType) -> String {
        switch target {
        case .uint64: "kiln_truncu64"
        case .int64, .uint32: "kiln_trunc64"
        default: "kiln_trunc32"
        }
    }

    /// A C expression converting `value` of `source` to `target` as `Tensor.cast` does: floats to integers
    /// truncate (`NumpyTruncation`) and wrap, integers wrap, uint64 reaches floats through double, anything
    /// to bool is `!= 0`.
    static func convert(_ value: String, from source: DType, to target: DType) throws -> String {
        let s = try CUDAPrelude.requireTypeName(source)
        let t = try CUDAPrelude.requireTypeName(target)
        _ = s
        if source == target { return value }
        if target == .bool { return "(\(value) != (\(s))0)" }
        if isFloat(source) {
            if isFloat(target) { return "((\(t))\(value))" }
            return "((\(t))\(truncation(to: target))((double)\(value)))"
        }
        if source == .uint64 && isFloat(target) { return "((\(t))(double)\(value))" }
        return "((\(t))(long long)\(value))"
    }

    /// The launch argument and C parameter type carrying a floating-point constant of an op in `dtype`.
    static func floatParameter(_ value: Float, _ dtype: DType) -> (String, CUDAArgument) {
        dtype == .float32 ? ("float", .float32(value)) : ("double", .float64(Double(value)))
    }

    /// `dtype`'s value of `value` as the CPU casts it, as a C parameter of the kernel's compute type: float
    /// and double pass as themselves, integers as `long long` (converted back in the kernel).
    static func typedParameter(_ value: Tensor, _ dtype: DType) throws -> (String, CUDAArgument) {
        let v = try value.cast(to: dtype)
        switch dtype {
        case .float32: return ("float", .float32(Float(try v.doubleValues()[0])))
        case .float64: return ("double", .float64(try v.doubleValues()[0]))
        default:
            guard dtype.isInteger || dtype == .bool else { throw KilnError.unsupported("parameter of \(dtype)") }
            return ("long long", .int64(try v.int64Values()[0]))
        }
    }
}
