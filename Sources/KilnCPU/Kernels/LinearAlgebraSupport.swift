import KilnIR

/// Helpers shared by the linear-algebra and convolution kernels.
enum LinearAlgebraSupport {
    /// The float elements of an optional tensor, nil when absent or empty.
    static func withFloats<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t, t.count > 0 else { return body(nil) }
        return t.withUnsafeBuffer(as: Float.self) { body($0.baseAddress) }
    }

    /// Half-precision tensors are computed in float32 and rounded back, as ONNX Runtime does.
    static func isHalf(_ dtype: DType) -> Bool { dtype == .float16 || dtype == .bfloat16 }

    /// A float32 copy of a float16 or bfloat16 tensor; other tensors are returned unchanged.
    static func widened(_ t: Tensor) -> Tensor {
        switch t.dtype {
        case .float16:
            return t.withUnsafeBuffer(as: Float16.self) { src in
                Tensor.build(Float.self, shape: t.shape) { dst in for i in 0..<src.count { dst[i] = Float(src[i]) } }
            }
        case .bfloat16:
            return t.withUnsafeBuffer(as: BFloat16.self) { src in
                Tensor.build(Float.self, shape: t.shape) { dst in for i in 0..<src.count { dst[i] = src[i].floatValue }
                }
            }
        default: return t
        }
    }

    /// A float32 tensor rounded to `dtype` (float16 or bfloat16); float32 is returned unchanged.
    static func narrowed(_ t: Tensor, to dtype: DType) -> Tensor {
        guard t.dtype == .float32 else { return t }
        switch dtype {
        case .float16:
            return t.withUnsafeBuffer(as: Float.self) { src in
                Tensor.build(Float16.self, shape: t.shape) { dst in for i in 0..<src.count { dst[i] = Float16(src[i]) }
                }
            }
        case .bfloat16:
            return t.withUnsafeBuffer(as: Float.self) { src in
                Tensor.build(BFloat16.self, shape: t.shape) { dst in
                    for i in 0..<src.count { dst[i] = BFloat16(src[i]) }
                }
            }
        default: return t
        }
    }

    static func requireSameType(_ tensors: [Tensor], _ what: String) throws {
        guard let first = tensors.first else { return }
        for t in tensors.dropFirst() where t.dtype != first.dtype {
            throw KilnError.typeMismatch("\(what) operands have different types: \(first.dtype) and \(t.dtype)")
        }
    }

    /// Reads an element of any numeric dtype as Int64 (for zero points).
    static func integers(_ t: Tensor?) throws -> [Int64] {
        guard let t else { return [0] }
        return try t.int64Values()
    }

    /// Multi-index odometer step over `shape`; returns false after the last index.
    @inline(__always)
    static func increment(_ index: inout [Int], _ shape: [Int]) -> Bool {
        var axis = shape.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { return true }
            index[axis] = 0
            axis -= 1
        }
        return false
    }

    /// Offsets, for each flat index of the broadcast `outShape`, into a tensor whose strides (0 on broadcast
    /// axes) are `strides`.
    static func broadcastOffsets(_ outShape: [Int], _ strides: [Int]) -> [Int] {
        let total = Tensor.elementCount(outShape)
        var offsets = [Int](repeating: 0, count: total)
        guard total > 0 else { return offsets }
        var index = [Int](repeating: 0, count: outShape.count)
        for i in 0..<total {
            var o = 0
            for a in 0..<outShape.count { o += index[a] * strides[a] }
            offsets[i] = o
            _ = increment(&index, outShape)
        }
        return offsets
    }
}
