import KilnIR

/// Element conversions shared by the signal, text, ML and misc kernels. These families compute in Double
/// (windows, transforms, tree sums) and round once to the output type, so they read and write whole tensors
/// through one specialised loop per dtype instead of per-element dynamic dispatch.
enum MiscSupport {
    /// Every element of a numeric tensor as Double, in row-major order.
    static func doubles(_ tensor: Tensor) throws -> [Double] {
        try tensor.dtype.visit(DoubleReader(tensor: tensor))
    }

    /// A tensor of `dtype` holding `values` (rounded or truncated as ONNX Cast does).
    static func tensor(_ dtype: DType, shape: [Int], _ values: [Double]) throws -> Tensor {
        guard Tensor.elementCount(shape) == values.count else {
            throw KilnError.shapeMismatch("\(values.count) values do not fill shape \(shape)")
        }
        return try dtype.visit(DoubleWriter(shape: shape, values: values))
    }

    /// Every element of an integer-like tensor as Int64.
    static func int64s(_ tensor: Tensor) throws -> [Int64] { try tensor.int64Values() }

    /// The one element of a scalar-like input (shape [] or [1]).
    static func scalar(_ tensor: Tensor, _ what: String) throws -> Double {
        guard tensor.count == 1 else {
            throw KilnError.invalidArgument("\(what) must have one element, has shape \(tensor.shape)")
        }
        return try doubles(tensor)[0]
    }

    static func scalarInt(_ tensor: Tensor, _ what: String) throws -> Int {
        guard tensor.count == 1 else {
            throw KilnError.invalidArgument("\(what) must have one element, has shape \(tensor.shape)")
        }
        let v = try tensor.int64Values()[0]
        guard v >= Int64(Int32.min) * 1024, v <= Int64(Int32.max) * 1024 else {
            throw KilnError.invalidArgument("\(what) = \(v) is out of range")
        }
        return Int(v)
    }

    /// Outputs whose size comes from input values (window length, DFT length, sample counts) are capped so a
    /// hostile or mistaken value fails with an error instead of exhausting memory.
    static let maxGeneratedElements = 1 << 30

    /// `dims` multiplied with overflow and size checks.
    static func checkedCount(_ dims: [Int], _ what: String) throws -> Int {
        var total = 1
        for d in dims {
            guard d >= 0 else { throw KilnError.invalidArgument("\(what) has a negative size in \(dims)") }
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maxGeneratedElements else {
                throw KilnError.invalidArgument("\(what) of shape \(dims) is too large")
            }
            total = product
        }
        return total
    }

    /// Normalises a possibly negative axis into `0..<rank`.
    static func axis(_ axis: Int, rank: Int, _ what: String = "axis") throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else {
            throw KilnError.invalidArgument("\(what) \(axis) is out of range for rank \(rank)")
        }
        return a
    }

    private struct DoubleReader: ScalarVisitor {
        let tensor: Tensor
        func visit<T: TensorScalar>(_ type: T.Type) throws -> [Double] {
            tensor.withUnsafeBuffer(as: T.self) { buffer in
                [Double](unsafeUninitializedCapacity: buffer.count) { out, initialized in
                    for i in 0..<buffer.count { out[i] = buffer[i].doubleValue }
                    initialized = buffer.count
                }
            }
        }
    }

    private struct DoubleWriter: ScalarVisitor {
        let shape: [Int]
        let values: [Double]
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            Tensor.build(T.self, shape: shape) { out in
                values.withUnsafeBufferPointer { source in
                    for i in 0..<out.count { out[i] = T(castingFrom: source[i]) }
                }
            }
        }
    }
}
