/// Element-wise reads of a tensor of any numeric dtype, for attribute-like inputs (shapes, axes, pads) and for
/// comparisons in tests. Not for hot loops.
extension Tensor {
    /// Every element as Int64 (floating-point values truncate). Throws for strings and unsupported types.
    public func int64Values() throws -> [Int64] {
        guard let scalar = dtype.scalarType else {
            throw KilnError.typeMismatch("expected an integer tensor, got \(dtype.onnxName)")
        }
        return readInt64(scalar)
    }

    public func intValues() throws -> [Int] { try int64Values().map { Int($0) } }

    /// Every element as Double. Throws for strings and unsupported types.
    public func doubleValues() throws -> [Double] {
        guard let scalar = dtype.scalarType else {
            throw KilnError.typeMismatch("expected a numeric tensor, got \(dtype.onnxName)")
        }
        return readDouble(scalar)
    }

    /// The single element of a one-element tensor, as Double.
    public func scalarDouble() throws -> Double {
        guard count == 1 else { throw KilnError.shapeMismatch("expected one element, got shape \(shape)") }
        return try doubleValues()[0]
    }

    public func scalarInt() throws -> Int {
        guard count == 1 else { throw KilnError.shapeMismatch("expected one element, got shape \(shape)") }
        return try intValues()[0]
    }

    private func readInt64<T: TensorScalar>(_ type: T.Type) -> [Int64] {
        withUnsafeBuffer(as: T.self) { $0.map(\.int64Value) }
    }

    private func readDouble<T: TensorScalar>(_ type: T.Type) -> [Double] {
        withUnsafeBuffer(as: T.self) { $0.map(\.doubleValue) }
    }

    /// A 1-D int64 tensor, the ONNX convention for shapes and indices.
    public static func int64(_ values: [Int64]) -> Tensor { Tensor(shape: [values.count], scalars: values) }
    public static func int64(_ values: [Int]) -> Tensor { int64(values.map { Int64($0) }) }
}
