import KilnIR

/// Evaluates an Einstein summation directly: every output element is the sum, over the contracted labels, of
/// the product of the inputs. A repeated label within one input reads its diagonal (the axis strides add up).
/// Floating-point types accumulate in double, integers in wrapping int64.
struct EinsumEvaluator {
    let equation: EinsumEquation

    /// Loop structure: label sizes (output labels first) and each input's stride per label.
    private struct Plan {
        var sizes: [Int] = []
        var outputCount = 0
        var strides: [[Int]] = []
        var outShape: [Int] { Array(sizes.prefix(outputCount)) }
    }

    func evaluate(_ tensors: [Tensor]) throws -> Tensor {
        guard tensors.count == equation.inputs.count else {
            throw KilnError.invalidArgument(
                "einsum '\(equation)' takes \(equation.inputs.count) inputs, got \(tensors.count)")
        }
        try LinearAlgebraSupport.requireSameType(tensors, "einsum")
        let plan = try makePlan(tensors.map(\.shape))
        let dtype = tensors.first?.dtype ?? .float32
        if dtype.isFloatingPoint {
            let values = try tensors.map { try $0.doubleValues() }
            let result = run(plan, values, zero: 0.0, one: 1.0, multiplyAdd: { $0 + $1 * $2 }, multiply: { $0 * $1 })
            return try Tensor.fromDoubles(result, shape: plan.outShape, dtype: dtype)
        }
        guard dtype.isInteger else { throw KilnError.unsupported("einsum of \(dtype.onnxName)") }
        let values = try tensors.map { try $0.int64Values() }
        let result = run(
            plan, values, zero: Int64(0), one: Int64(1), multiplyAdd: { $0 &+ $1 &* $2 }, multiply: { $0 &* $1 })
        return try dtype.visit(IntegerTensorBuilder(values: result, shape: plan.outShape))
    }

    private func makePlan(_ shapes: [[Int]]) throws -> Plan {
        // Ellipsis axes get negative ids -1, -2, ... aligned to the right across inputs, as numpy broadcasts.
        var ellipsisRank = 0
        for (terms, shape) in zip(equation.inputs, shapes) {
            let named = terms.filter { $0 != .ellipsis }.count
            if terms.contains(.ellipsis) {
                guard shape.count >= named else { throw mismatch(shape, terms) }
                ellipsisRank = max(ellipsisRank, shape.count - named)
            } else if shape.count != named {
                throw mismatch(shape, terms)
            }
        }
        func id(_ c: Character) -> Int { Int(c.asciiValue ?? 0) }
        var axisLabels: [[Int]] = []
        var sizes: [Int: Int] = [:]
        for (terms, shape) in zip(equation.inputs, shapes) {
            let own = shape.count - terms.filter { $0 != .ellipsis }.count
            var labels: [Int] = []
            for term in terms {
                switch term {
                case .label(let c): labels.append(id(c))
                case .ellipsis: labels += (0..<own).map { -(ellipsisRank - own + $0) - 1 }
                }
            }
            for (label, size) in zip(labels, shape) {
                if let old = sizes[label], old != size, old != 1, size != 1 {
                    throw KilnError.shapeMismatch("einsum '\(equation)': label sizes \(old) and \(size) differ")
                }
                if sizes[label] == nil || sizes[label] == 1 { sizes[label] = size }
            }
            axisLabels.append(labels)
        }
        var loop: [Int] = []
        for term in equation.output {
            switch term {
            case .label(let c): loop.append(id(c))
            case .ellipsis: loop += (0..<ellipsisRank).map { -$0 - 1 }
            }
        }
        let outputCount = loop.count
        for labels in axisLabels { for l in labels where !loop.contains(l) { loop.append(l) } }
        var plan = Plan(sizes: loop.map { sizes[$0] ?? 1 }, outputCount: outputCount)
        for (labels, shape) in zip(axisLabels, shapes) {
            let axisStrides = Broadcast.strides(shape)
            plan.strides.append(
                loop.map { label in
                    var s = 0
                    for (axis, l) in labels.enumerated() where l == label && shape[axis] != 1 { s += axisStrides[axis] }
                    return s
                })
        }
        return plan
    }

    private func mismatch(_ shape: [Int], _ terms: [EinsumEquation.Term]) -> KilnError {
        KilnError.shapeMismatch("einsum '\(equation)': operand of shape \(shape) does not match its subscripts")
    }

    private func run<T>(
        _ plan: Plan, _ inputs: [[T]], zero: T, one: T, multiplyAdd: (T, T, T) -> T, multiply: (T, T) -> T
    ) -> [T] {
        let outShape = plan.outShape
        let innerShape = Array(plan.sizes.dropFirst(plan.outputCount))
        let total = Tensor.elementCount(outShape)
        let innerTotal = Tensor.elementCount(innerShape)
        var result = [T](repeating: zero, count: total)
        guard total > 0, innerTotal > 0 else { return result }
        var outIndex = [Int](repeating: 0, count: outShape.count)
        var inner = [Int](repeating: 0, count: innerShape.count)
        for o in 0..<total {
            let base = plan.strides.map { s in zip(outIndex, s).reduce(0) { $0 + $1.0 * $1.1 } }
            var sum = zero
            for i in inner.indices { inner[i] = 0 }
            repeat {
                var product = one
                for (n, input) in inputs.enumerated() {
                    var offset = base[n]
                    let s = plan.strides[n]
                    for i in inner.indices { offset += inner[i] * s[plan.outputCount + i] }
                    product = n == 0 ? input[offset] : multiply(product, input[offset])
                }
                sum = multiplyAdd(sum, product, one)
            } while LinearAlgebraSupport.increment(&inner, innerShape)
            result[o] = sum
            _ = LinearAlgebraSupport.increment(&outIndex, outShape)
        }
        return result
    }
}

/// Builds a tensor of the visited integer type from int64 values (wrapping).
struct IntegerTensorBuilder: ScalarVisitor {
    let values: [Int64]
    let shape: [Int]
    func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
        Tensor(shape: shape, scalars: values.map { T(castingFrom: $0) })
    }
}
