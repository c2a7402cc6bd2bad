import KilnIR
import KilnRuntime

extension ReductionKernels {
    /// `y` with NaN elements replaced by 0.
    static func zeroingNaN(_ y: Tensor) throws -> Tensor {
        if y.dtype == .float32 {
            return Tensor(shape: y.shape, scalars: y.scalars(as: Float.self).map { $0.isNaN ? 0 : $0 })
        }
        return try Tensor(shape: y.shape, scalars: try y.doubleValues().map { $0.isNaN ? 0 : $0 }).cast(to: y.dtype)
    }

    static func softmax(_ layer: SoftmaxLayer, _ x: Tensor, _ threads: Int) throws -> Tensor {
        if x.rank == 0 { return try softmax(layer, try x.reshaped([1]), threads).reshaped([]) }
        let axis = try reductionAxis(layer.axis, rank: x.rank)
        var (outer, n, inner) = reductionSplit(x.shape, axis: axis)
        if layer.flattenTail {
            n *= inner
            inner = 1
        }
        return try x.dtype.visitReductionFloat(
            SoftmaxRun(variant: layer.variant, x: x, outer: outer, n: n, inner: inner, threads: threads), op: "softmax")
    }

    struct SoftmaxRun: ReductionFloatVisitor {
        let variant: SoftmaxLayer.Variant
        let x: Tensor
        let outer: Int
        let n: Int
        let inner: Int
        let threads: Int

        func visit<T: ReductionFloat>(_ type: T.Type) throws -> Tensor {
            let (variant, n, inner) = (variant, n, inner)
            return x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: x.shape) { out in
                    let lines = outer * inner
                    Parallel.forEach(lines, threads: threads, minimumChunk: max(1, 8192 / max(n, 1))) { range in
                        for line in range {
                            let base = (line / inner) * n * inner + line % inner
                            Self.line(variant, src, out, base, n, inner)
                        }
                    }
                }
            }
        }

        @inline(__always)
        static func line<T: ReductionFloat>(
            _ variant: SoftmaxLayer.Variant, _ src: UnsafeBufferPointer<T>, _ out: UnsafeMutableBufferPointer<T>,
            _ base: Int, _ n: Int, _ step: Int
        ) {
            guard n > 0 else { return }
            var m = src[base].acc
            var at = 0
            for i in 1..<n {
                let v = src[base &+ i &* step].acc
                if v > m {
                    m = v
                    at = i
                }
            }
            switch variant {
            case .hardmax:
                for i in 0..<n { out[base &+ i &* step] = T(acc: i == at ? 1 : 0) }
            case .softmax:
                var sum: T.Acc = 0
                if T.self == Float.self {
                    // Keep the exponentials in the output so the loop reads the input once.
                    for i in 0..<n {
                        let e = T.Acc.rExp(src[base &+ i &* step].acc - m)
                        out[base &+ i &* step] = T(acc: e)
                        sum += e
                    }
                    let r = 1 / sum
                    for i in 0..<n { out[base &+ i &* step] = T(acc: out[base &+ i &* step].acc * r) }
                } else {
                    for i in 0..<n { sum += T.Acc.rExp(src[base &+ i &* step].acc - m) }
                    for i in 0..<n { out[base &+ i &* step] = T(acc: T.Acc.rExp(src[base &+ i &* step].acc - m) / sum) }
                }
            case .logSoftmax:
                var sum: T.Acc = 0
                for i in 0..<n { sum += T.Acc.rExp(src[base &+ i &* step].acc - m) }
                let shift = m + T.Acc.rLog(sum)
                for i in 0..<n { out[base &+ i &* step] = T(acc: src[base &+ i &* step].acc - shift) }
            }
        }
    }

    static func cumulativeSum(_ layer: CumulativeLayer, _ x: Tensor, axis given: [Int]?) throws -> Tensor {
        guard let raw = layer.axis ?? given?.first, layer.axis != nil || given?.count == 1 else {
            throw KilnError.invalidArgument("cumulative \(layer.op.rawValue) needs one axis")
        }
        if x.rank == 0 { return x }
        let axis = try reductionAxis(raw, rank: x.rank)
        let (outer, n, inner) = reductionSplit(x.shape, axis: axis)
        let run = CumulativeRun(
            x: x, outer: outer, n: n, inner: inner, product: layer.op == .prod, exclusive: layer.exclusive,
            reverse: layer.reverse)
        switch x.dtype {
        case .float32, .float64, .float16, .bfloat16: return try x.dtype.visitReductionFloat(run, op: "cumulative")
        default: return try x.dtype.visitNumeric(run)
        }
    }

    struct CumulativeRun: ReductionFloatVisitor, NumericVisitor {
        let x: Tensor
        let outer: Int
        let n: Int
        let inner: Int
        let product: Bool
        let exclusive: Bool
        let reverse: Bool

        /// Calls `body(index)` for every element in scan order along each line.
        @inline(__always)
        private func scan(_ body: (_ index: Int, _ first: Bool) -> Void) {
            for o in 0..<outer {
                for j in 0..<inner {
                    for t in 0..<n {
                        let i = reverse ? n - 1 - t : t
                        body((o * n + i) * inner + j, t == 0)
                    }
                }
            }
        }

        func visit<T: ReductionFloat>(_ type: T.Type) throws -> Tensor {
            x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: x.shape) { out in
                    let identity: T.Acc = product ? 1 : 0
                    var acc = identity
                    scan { index, first in
                        if first { acc = identity }
                        let v = src[index].acc
                        if exclusive { out[index] = T(acc: acc) }
                        if product { acc *= v } else { acc += v }
                        if !exclusive { out[index] = T(acc: acc) }
                    }
                }
            }
        }

        func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> Tensor {
            throw KilnError.unsupported("CumSum: unexpected element type \(T.dtype)")
        }

        func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> Tensor {
            x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: x.shape) { out in
                    let identity: T = product ? 1 : 0
                    var acc = identity
                    scan { index, first in
                        if first { acc = identity }
                        if exclusive { out[index] = acc }
                        if product { acc &*= src[index] } else { acc &+= src[index] }
                        if !exclusive { out[index] = acc }
                    }
                }
            }
        }
    }

    static func topK(_ layer: TopKLayer, _ x: Tensor, k given: [Int]?) throws -> [Tensor] {
        guard let k = layer.k ?? given?.first, layer.k != nil || given?.count == 1 else {
            throw KilnError.invalidArgument("TopK needs one k")
        }
        let axis = try reductionAxis(layer.axis, rank: x.rank)
        guard k >= 0, k <= x.shape[axis] else {
            throw KilnError.invalidArgument("TopK k=\(k) is out of range for axis size \(x.shape[axis])")
        }
        let run = TopKRun(x: x, axis: axis, k: k, largest: layer.largest)
        if x.dtype == .bfloat16 { return run.typed(BFloat16.self) }
        return try x.dtype.visitNumeric(run)
    }

    struct TopKRun: NumericVisitor {
        let x: Tensor
        let axis: Int
        let k: Int
        let largest: Bool

        func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> [Tensor] { typed(T.self) }
        func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> [Tensor] { typed(T.self) }

        func typed<T: TensorScalar & Comparable>(_ type: T.Type) -> [Tensor] {
            let (outer, n, inner) = reductionSplit(x.shape, axis: axis)
            var shape = x.shape
            shape[axis] = k
            var indices = Tensor(zeros: .int64, shape: shape)
            let values = x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: shape) { out in
                    indices = Tensor.build(Int64.self, shape: shape) { idx in
                        var order = [Int](repeating: 0, count: n)
                        for o in 0..<outer {
                            for j in 0..<inner {
                                let base = o * n * inner + j
                                for i in 0..<n { order[i] = i }
                                // Ties go to the lower index: compare values, then positions.
                                if largest {
                                    order.sort { a, b in
                                        let va = src[base + a * inner]
                                        let vb = src[base + b * inner]
                                        return va > vb || (va == vb && a < b)
                                    }
                                } else {
                                    order.sort { a, b in
                                        let va = src[base + a * inner]
                                        let vb = src[base + b * inner]
                                        return va < vb || (va == vb && a < b)
                                    }
                                }
                                let outBase = o * k * inner + j
                                for t in 0..<k {
                                    out[outBase + t * inner] = src[base + order[t] * inner]
                                    idx[outBase + t * inner] = Int64(order[t])
                                }
                            }
                        }
                    }
                }
            }
            return [values, indices]
        }
    }
}
