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

        __device__ __forceinline__ float kiln_sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }
        __device__ __forceinline__ float kiln_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
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
        default: nil
        }
    }

    /// `typeName`, or an `unsupported` error naming the dtype.
    public static func requireTypeName(_ dtype: DType) throws -> String {
        guard let name = typeName(dtype) else {
            throw KilnError.unsupported("the CUDA backend has no kernels for dtype \(dtype.onnxName) yet")
        }
        return name
    }
}
