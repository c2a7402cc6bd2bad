import KilnIR
import KilnRuntime

extension ReductionKernels {
    static func argReduce(_ layer: ArgReduceLayer, _ x: Tensor, _ threads: Int) throws -> Tensor {
        let axis = try reductionAxis(layer.axis, rank: x.rank)
        guard x.shape[axis] > 0 else {
            throw KilnError.invalidArgument("arg\(layer.op.rawValue) over an empty axis")
        }
        var shape = x.shape
        if layer.keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
        let run = ArgRun(
            x: x, split: reductionSplit(x.shape, axis: axis), shape: shape, largest: layer.op == .max,
            last: layer.selectLastIndex)
        switch x.dtype {
        case .bfloat16: return run.typed(BFloat16.self)
        case .bool: return run.typed(UInt8.self)
        default: return try x.dtype.visitNumeric(run)
        }
    }

    struct ArgRun: NumericVisitor {
        let x: Tensor
        let split: (outer: Int, count: Int, inner: Int)
        let shape: [Int]
        let largest: Bool
        let last: Bool

        func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> Tensor { typed(T.self) }
        func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> Tensor { typed(T.self) }

        func typed<T: TensorScalar & Comparable>(_ type: T.Type) -> Tensor {
            let (outer, n, inner) = split
            return x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(Int64.self, shape: shape) { out in
                    for o in 0..<outer {
                        for j in 0..<inner {
                            let base = o * n * inner + j
                            var best = src[base]
                            var at = 0
                            for i in 1..<max(n, 1) {
                                let v = src[base + i * inner]
                                let better = largest ? (last ? v >= best : v > best) : (last ? v <= best : v < best)
                                if better {
                                    best = v
                                    at = i
                                }
                            }
                            out[o * inner + j] = Int64(at)
                        }
                    }
                }
            }
        }
    }
}
