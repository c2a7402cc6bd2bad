/// `y = alpha * op(A) x op(B) + beta * C`: ONNX MatMul (numpy batched broadcasting, 1-D operands promoted and
/// their unit axis dropped from the result) and Gemm (transposes, alpha, beta, broadcast bias C).
/// `op` transposes the last two axes when the flag is set. Inputs: A, B, optional C.
public struct MatMulLayer: Layer {
    public static let kind = LayerKind("matMul")
    public var transposeA: Bool
    public var transposeB: Bool
    public var alpha: Float
    public var beta: Float

    public init(transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 1) {
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.alpha = alpha
        self.beta = beta
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let a = inputs.first?.tensorType, inputs.count > 1, let b = inputs[1].tensorType else { return [nil] }
        guard let sa = a.shape, let sb = b.shape else { return [.tensor(TensorType(a.dtype, nil))] }
        let shape = try MatMulLayer.outputDims(sa, sb, transposeA: transposeA, transposeB: transposeB)
        return [.tensor(TensorType(a.dtype, shape))]
    }

    /// The result shape of the (batched) product, with numpy's rules for 1-D operands.
    public static func outputDims(_ a: [Dim], _ b: [Dim], transposeA: Bool, transposeB: Bool) throws -> [Dim] {
        guard !a.isEmpty, !b.isEmpty else { throw KilnError.shapeMismatch("matMul operands must have rank >= 1") }
        let a2: [Dim] = a.count == 1 ? [1, a[0]] : a
        let b2: [Dim] = b.count == 1 ? [b[0], 1] : b
        let m = transposeA ? a2[a2.count - 1] : a2[a2.count - 2]
        let ka = transposeA ? a2[a2.count - 2] : a2[a2.count - 1]
        let kb = transposeB ? b2[b2.count - 1] : b2[b2.count - 2]
        let n = transposeB ? b2[b2.count - 2] : b2[b2.count - 1]
        if let x = ka.value, let y = kb.value, x != y {
            throw KilnError.shapeMismatch("matMul inner dimensions differ: \(a) x \(b)")
        }
        var out = try Broadcast.dims(Array(a2.dropLast(2)), Array(b2.dropLast(2)))
        if a.count != 1 { out.append(m) }
        if b.count != 1 { out.append(n) }
        return out
    }

    public var description: String {
        var parts: [String] = []
        if transposeA { parts.append("transA") }
        if transposeB { parts.append("transB") }
        if alpha != 1 { parts.append("alpha=\(alpha)") }
        if beta != 1 { parts.append("beta=\(beta)") }
        return parts.joined(separator: ",")
    }
}

/// ONNX MatMulInteger: an int32 product of 8-bit operands after subtracting zero points. Inputs: A, B, optional
/// a_zero_point (scalar or per row of A), optional b_zero_point (scalar or per column of B).
public struct MatMulIntegerLayer: Layer {
    public static let kind = LayerKind("matMul.integer")
    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let a = inputs.first?.tensorType, inputs.count > 1, let b = inputs[1].tensorType else { return [nil] }
        guard let sa = a.shape, let sb = b.shape else { return [.tensor(TensorType(.int32, nil))] }
        let shape = try MatMulLayer.outputDims(sa, sb, transposeA: false, transposeB: false)
        return [.tensor(TensorType(.int32, shape))]
    }
}

/// ONNX Det: the determinant of each square matrix in the last two axes.
public struct DeterminantLayer: Layer {
    public static let kind = LayerKind("determinant")
    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [nil] }
        guard let shape = x.shape else { return [.tensor(TensorType(x.dtype, nil))] }
        guard shape.count >= 2 else { throw KilnError.shapeMismatch("det needs rank >= 2, got \(shape)") }
        if let r = shape[shape.count - 1].value, let c = shape[shape.count - 2].value, r != c {
            throw KilnError.shapeMismatch("det needs square matrices, got \(shape)")
        }
        return [.tensor(TensorType(x.dtype, Array(shape.dropLast(2))))]
    }
}
