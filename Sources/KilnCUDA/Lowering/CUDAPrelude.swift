import KilnIR

/// CUDA C shared by every Kiln kernel module; the compiler prepends it to each `CUDASource`.
public enum CUDAPrelude {
    /// The largest rank `KilnDims` holds.
    public static let maxRank = 8

    public static let text = """
        typedef long long i64;
        typedef unsigned long long u64;
        /* Sizes or strides passed by value (CUDAArgument.dims); unused entries are 0. */
        struct KilnDims { i64 v[8]; };

        /* 16-bit floats as storage: they convert to float for arithmetic and back with round-to-nearest-even
           (PTX cvt), so kernels compute in float and only loads and stores see the narrow type. */
        struct __align__(2) kiln_half {
            unsigned short bits;
            kiln_half() = default;
            __device__ __forceinline__ kiln_half(float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
            __device__ __forceinline__ operator float() const {
                float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits)); return f;
            }
        };
        struct __align__(2) kiln_bf16 {
            unsigned short bits;
            kiln_bf16() = default;
            __device__ __forceinline__ kiln_bf16(float f) { asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
            __device__ __forceinline__ operator float() const { return __uint_as_float(((unsigned)bits) << 16); }
        };

        __device__ __forceinline__ float kiln_sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }
        /* x * Phi(x) with Phi(-|x|) = erfc(|x| / sqrt 2) / 2 = t * 2^(Q(t) - x^2 log2(e) / 2), t = 1 / (1 + |x| / sqrt 8):
           Q, of degree 7, was fitted to that identity over all of t in (0, 1] (error below 3.4e-6 in the exponent;
           the result is within 1.1e-5 of x * Phi(x), relatively, down to 1e-35). One reciprocal, one exponential
           and 13 multiply-adds, branch-free, no cancellation for negative x (1 + erf(x) loses the tail). */
        __device__ __forceinline__ float kiln_gelu_erf(float x) {
            float t, e;
            asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(t) : "f"(fmaf(fabsf(x), 0.35355339059327376f, 1.0f)));
            float q = -0.229464111f;
            q = fmaf(q, t, 0.930453208f);
            q = fmaf(q, t, -1.21510985f);
            q = fmaf(q, t, 0.329954273f);
            q = fmaf(q, t, 0.0149793985f);
            q = fmaf(q, t, 0.552732936f);
            q = fmaf(q, t, 1.44220221f);
            q = fmaf(q, t, -2.82574467f);
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(fmaf(x * x, -0.72134752044448170f, q)));
            const float tail = t * e;
            return x * (x >= 0.0f ? 1.0f - tail : tail);
        }
        __device__ __forceinline__ float kiln_gelu_tanh(float x) {
            return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
        }

        """

    /// The CUDA C spelling of a dtype, or nil where kernels do not handle it yet.
    public static func typeName(_ dtype: DType) -> String? {
        switch dtype {
        case .float32: "float"
        case .float64: "double"
        case .int64: "long long"
        case .int32: "int"
        case .int16: "short"
        case .int8: "signed char"
        case .uint8: "unsigned char"
        case .uint16: "unsigned short"
        case .uint32: "unsigned int"
        case .uint64: "unsigned long long"
        case .bool: "bool"
        case .float16: "kiln_half"
        case .bfloat16: "kiln_bf16"
        default: nil
        }
    }

    /// A kernel module written once for every float storage type: `KILN_T` in `template` becomes the C type
    /// of `dtype` and `KILN_NAME` its short name (`f32`, `f16`, `bf16`, as in `DType.description`), which also
    /// ends the module's name.
    public static func specialized(_ name: String, _ template: String, dtype: DType) -> CUDASource {
        let code = template.replacingOccurrences(of: "KILN_T", with: typeName(dtype) ?? "float")
            .replacingOccurrences(of: "KILN_NAME", with: dtype.description)
        return CUDASource(name: "\(name)_\(dtype)", code: code)
    }

    /// The dtype kernels compute in for values stored as `dtype`: float32 for the 16-bit floats, else itself.
    public static func computeType(_ dtype: DType) -> DType {
        dtype == .float16 || dtype == .bfloat16 ? .float32 : dtype
    }

    /// `typeName`, or an `unsupported` error naming the dtype.
    public static func requireTypeName(_ dtype: DType) throws -> String {
        guard let name = typeName(dtype) else {
            throw KilnError.unsupported("the CUDA backend has no kernels for dtype \(dtype.onnxName) yet")
        }
        return name
    }
}
