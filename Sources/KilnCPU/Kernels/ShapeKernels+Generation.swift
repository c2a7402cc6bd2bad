import KilnIR
import KilnRuntime

/// Kernels that make tensors from shapes or scalars: shapeOf, size, constantOfShape, range, eyeLike, trilu,
/// dropout.
extension ShapeKernels {
    static let generation: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(ShapeOfLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            return [.tensor(Tensor.int64(Array(x.shape[layer.range(rank: x.rank)])))]
        },
        cpuKernel(SizeLayer.self) { _, inputs, _ in
            [.tensor(Tensor(scalar: Int64(try inputs.tensor(0).count)))]
        },
        cpuKernel(ConstantOfShapeLayer.self) { layer, inputs, _ in
            let shape = try inputs.tensor(0).intValues()
            _ = try ShapeAxes.checkedCount(shape)
            return [.tensor(filled(layer.value, shape: shape))]
        },
        cpuKernel(RangeLayer.self) { _, inputs, _ in
            let start = try inputs.tensor(0)
            let limit = try inputs.tensor(1)
            let delta = try inputs.tensor(2)
            return [.tensor(try start.dtype.visit(RangeMaker(start: start, limit: limit, delta: delta)))]
        },
        cpuKernel(EyeLikeLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            guard x.rank == 2 else { throw KilnError.shapeMismatch("EyeLike needs a 2-D input, got \(x.shape)") }
            guard abs(layer.k) < 1 << 40 else { throw KilnError.invalidArgument("EyeLike k \(layer.k)") }
            let dtype = layer.dtype ?? x.dtype
            let one = try ShapeCopy.scalar(dtype, 1)
            let result = Tensor(zeros: dtype, shape: x.shape)
            let es = dtype.byteSize
            let (rows, cols) = (x.shape[0], x.shape[1])
            for i in 0..<rows where i + layer.k >= 0 && i + layer.k < cols {
                (result.storage.bytes + (i * cols + i + layer.k) * es).copyMemory(
                    from: one.storage.bytes, byteCount: es)
            }
            return [.tensor(result)]
        },
        cpuKernel(TriluLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let k = try inputs.optionalTensor(1)?.scalarInt() ?? 0
            guard x.rank >= 2 else { throw KilnError.shapeMismatch("Trilu needs rank >= 2, got \(x.shape)") }
            let rows = x.shape[x.rank - 2]
            let cols = x.shape[x.rank - 1]
            func keep(_ i: Int, _ j: Int) -> Bool { layer.upper ? j - i >= k : j - i <= k }
            if x.dtype == .string {
                var s = x.strings
                for e in s.indices where !keep((e / cols) % rows, e % cols) { s[e] = "" }
                return [.tensor(Tensor(shape: x.shape, strings: s))]
            }
            let result = try x.withUnsafeRawBytes { try Tensor(dtype: x.dtype, shape: x.shape, rawBytes: $0) }
            let es = x.dtype.byteSize
            for e in 0..<x.count where !keep((e / cols) % rows, e % cols) {
                (result.storage.bytes + e * es).initializeMemory(as: UInt8.self, repeating: 0, count: es)
            }
            return [.tensor(result)]
        },
        cpuKernel(DropoutLayer.self) { _, inputs, _ in
            let x = try inputs.tensor(0)
            let ratio = try inputs.optionalTensor(1)?.scalarDouble() ?? 0.5
            let training = try inputs.optionalTensor(2)?.scalarDouble() ?? 0
            if training != 0 && ratio != 0 {
                throw KilnError.unsupported("Dropout in training mode with ratio \(ratio) is random")
            }
            let mask = Tensor.build(Bool.self, shape: x.shape) { $0.initialize(repeating: true) }
            return [.tensor(x), .tensor(mask)]
        },
    ]

    /// A tensor of `shape` with every element equal to the one element of `value`.
    static func filled(_ value: Tensor, shape: [Int]) -> Tensor {
        let n = Tensor.elementCount(shape)
        if value.dtype == .string {
            return Tensor(shape: shape, strings: Array(repeating: value.strings.first ?? "", count: n))
        }
        let result = Tensor(zeros: value.dtype, shape: shape)
        let es = value.dtype.byteSize
        guard value.count > 0, n > 0 else { return result }
        let zero = (0..<es).allSatisfy { value.storage.bytes.load(fromByteOffset: $0, as: UInt8.self) == 0 }
        if zero { return result }
        // Fill by doubling the filled prefix: O(log n) memcpy calls for large weights.
        let dst = result.storage.bytes
        dst.copyMemory(from: value.storage.bytes, byteCount: es)
        var filled = 1
        while filled < n {
            let chunk = min(filled, n - filled)
            (dst + filled * es).copyMemory(from: dst, byteCount: chunk * es)
            filled += chunk
        }
        return result
    }

    struct RangeMaker: ScalarVisitor {
        let start: Tensor
        let limit: Tensor
        let delta: Tensor
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            let s = try start.scalarDouble()
            let l = try limit.scalarDouble()
            let d = try delta.scalarDouble()
            guard start.dtype == limit.dtype, start.dtype == delta.dtype else {
                throw KilnError.typeMismatch(
                    "Range needs one dtype, got \(start.dtype.onnxName), \(limit.dtype.onnxName), \(delta.dtype.onnxName)"
                )
            }
            guard d != 0 else { throw KilnError.invalidArgument("Range delta is 0") }
            let count: Int
            if T.dtype.isInteger {
                let (si, li, di) = (try start.int64Values()[0], try limit.int64Values()[0], try delta.int64Values()[0])
                let (span, overflow) = li.subtractingReportingOverflow(si)
                guard !overflow, di != Int64.min else { throw KilnError.invalidArgument("Range overflows") }
                count = Int(max(0, span / di + ((span % di != 0 && (span > 0) == (di > 0)) ? 1 : 0)))
                _ = try ShapeAxes.checkedCount([count])
                return Tensor.build(T.self, shape: [count]) { out in
                    for i in 0..<count { out[i] = T(castingFrom: si + Int64(i) * di) }
                }
            }
            let q = ((l - s) / d).rounded(.up)
            guard q.isFinite, q < 1e9 else { throw KilnError.invalidArgument("Range of \(q) elements") }
            count = max(0, Int(q))
            // Accumulate in T as the reference does (start + i·delta computed in the element type).
            let st = T(castingFrom: s)
            let dt = T(castingFrom: d)
            return Tensor.build(T.self, shape: [count]) { out in
                for i in 0..<count { out[i] = T(castingFrom: st.doubleValue + Double(i) * dt.doubleValue) }
            }
        }
    }
}
