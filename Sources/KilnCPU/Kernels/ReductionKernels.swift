import Foundation
import KilnIR
import KilnRuntime

/// Kernels for reduce and argReduce, plus the softmax, cumulative and topK layers of the same family.
enum ReductionKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(ReduceLayer.self) { layer, inputs, context in
            [.tensor(try reduce(layer, try inputs.tensor(0), axes: try inputs.reductionInts(1), context.threads))]
        },
        cpuKernel(ArgReduceLayer.self) { layer, inputs, context in
            [.tensor(try argReduce(layer, try inputs.tensor(0), context.threads))]
        },
        cpuKernel(SoftmaxLayer.self) { layer, inputs, context in
            let y = try softmax(layer, try inputs.tensor(0), context.threads)
            return [.tensor(layer.zeroNaN ? try zeroingNaN(y) : y)]
        },
        cpuKernel(CumulativeLayer.self) { layer, inputs, _ in
            [.tensor(try cumulativeSum(layer, try inputs.tensor(0), axis: try inputs.reductionInts(1)))]
        },
        cpuKernel(TopKLayer.self) { layer, inputs, _ in
            try topK(layer, try inputs.tensor(0), k: try inputs.reductionInts(1)).map { .tensor($0) }
        },
    ]

    /// Where the reduction reads: output positions walk the kept axes, each reads `offsets` from its base.
    struct ReducePlan {
        var outputShape: [Int]
        var outputCount: Int
        /// Offsets of the reduced positions relative to an output's base; nil when they are 0..<reducedCount.
        var offsets: [Int]?
        var reducedCount: Int
        var keptSizes: [Int]
        var keptStrides: [Int]

        init(shape: [Int], reduced: [Int], keepDims: Bool) {
            let strides = Broadcast.strides(shape)
            let set = Set(reduced)
            var out: [Int] = []
            var rSizes: [Int] = []
            var rStrides: [Int] = []
            keptSizes = []
            keptStrides = []
            for i in shape.indices {
                if set.contains(i) {
                    if keepDims { out.append(1) }
                    rSizes.append(shape[i])
                    rStrides.append(strides[i])
                } else {
                    out.append(shape[i])
                    keptSizes.append(shape[i])
                    keptStrides.append(strides[i])
                }
            }
            outputShape = out
            outputCount = out.reduce(1, *)
            reducedCount = rSizes.reduce(1, *)
            // Reduced axes that are exactly the trailing ones read one contiguous run per output.
            let trailing = reduced.isEmpty || reduced == Array((shape.count - reduced.count)..<shape.count)
            offsets = trailing ? nil : reductionOffsets(sizes: rSizes, strides: rStrides)
        }

        /// The input offset of output position `index`'s first reduced element.
        @inline(__always) func base(_ index: Int) -> Int {
            if offsets == nil { return index * reducedCount }
            var rest = index
            var offset = 0
            for i in stride(from: keptSizes.count - 1, through: 0, by: -1) {
                let size = keptSizes[i]
                offset += (rest % size) * keptStrides[i]
                rest /= size
            }
            return offset
        }
    }

    static func reduce(_ layer: ReduceLayer, _ x: Tensor, axes: [Int]?, _ threads: Int) throws -> Tensor {
        let reduced = try layer.reducedAxes(rank: x.rank, given: layer.axes ?? axes)
        if reduced.isEmpty && (layer.noopWithEmptyAxes || x.rank == 0) {
            return x
        }
        let plan = ReducePlan(shape: x.shape, reduced: reduced, keepDims: layer.keepDims)
        switch x.dtype {
        case .bool:
            guard layer.op == .max || layer.op == .min else {
                throw KilnError.unsupported("reduce \(layer.op.rawValue) does not support bool")
            }
            return reduceBool(x, plan, any: layer.op == .max)
        case .float32, .float64, .float16, .bfloat16:
            return try x.dtype.visitReductionFloat(
                FloatReduce(op: layer.op, x: x, plan: plan, threads: threads), op: "reduce")
        default:
            return try x.dtype.visitNumeric(IntegerReduce(op: layer.op, x: x, plan: plan))
        }
    }

    private static func reduceBool(_ x: Tensor, _ plan: ReducePlan, any: Bool) -> Tensor {
        x.withUnsafeBuffer(as: Bool.self) { src in
            Tensor.build(Bool.self, shape: plan.outputShape) { out in
                for o in 0..<plan.outputCount {
                    let base = plan.base(o)
                    var result = !any
                    for r in 0..<plan.reducedCount {
                        let v = src[base + (plan.offsets?[r] ?? r)]
                        if v == any {
                            result = any
                            break
                        }
                    }
                    out[o] = result
                }
            }
        }
    }

    struct FloatReduce: ReductionFloatVisitor {
        let op: ReduceLayer.Op
        let x: Tensor
        let plan: ReducePlan
        let threads: Int

        func visit<T: ReductionFloat>(_ type: T.Type) throws -> Tensor {
            x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: plan.outputShape) { out in
                    let n = plan.reducedCount
                    let grain = max(1, 16384 / max(n, 1))
                    Parallel.forEach(plan.outputCount, threads: threads, minimumChunk: grain) { range in
                        for o in range {
                            out[o] = T(acc: one(src, plan.base(o), n))
                        }
                    }
                }
            }
        }

        @inline(__always)
        private func fold<T: ReductionFloat>(
            _ src: UnsafeBufferPointer<T>, _ base: Int, _ n: Int, _ initial: T.Acc, _ f: (T.Acc, T.Acc) -> T.Acc
        ) -> T.Acc {
            var acc = initial
            if let offsets = plan.offsets {
                offsets.withUnsafeBufferPointer { offs in
                    for r in 0..<n { acc = f(acc, src[base + offs[r]].acc) }
                }
            } else {
                for r in 0..<n { acc = f(acc, src[base + r].acc) }
            }
            return acc
        }

        @inline(__always)
        private func one<T: ReductionFloat>(_ src: UnsafeBufferPointer<T>, _ base: Int, _ n: Int) -> T.Acc {
            typealias A = T.Acc
            switch op {
            case .sum: return fold(src, base, n, 0) { $0 + $1 }
            case .mean: return fold(src, base, n, 0) { $0 + $1 } / A(n)
            case .l1: return fold(src, base, n, 0) { $0 + abs($1) }
            case .l2: return fold(src, base, n, 0) { $0 + $1 * $1 }.squareRoot()
            case .sumSquare: return fold(src, base, n, 0) { $0 + $1 * $1 }
            case .logSum: return A.rLog(fold(src, base, n, 0) { $0 + $1 })
            case .prod: return fold(src, base, n, 1) { $0 * $1 }
            case .max: return fold(src, base, n, -A.infinity) { ($1 > $0 || $1.isNaN) ? $1 : $0 }
            case .min: return fold(src, base, n, A.infinity) { ($1 < $0 || $1.isNaN) ? $1 : $0 }
            case .logSumExp:
                let m = fold(src, base, n, -A.infinity) { ($1 > $0 || $1.isNaN) ? $1 : $0 }
                guard m.isFinite else { return m == -A.infinity ? A.rLog(0) : m }
                return m + A.rLog(fold(src, base, n, 0) { $0 + A.rExp($1 - m) })
            }
        }
    }

    struct IntegerReduce: NumericVisitor {
        let op: ReduceLayer.Op
        let x: Tensor
        let plan: ReducePlan

        func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> Tensor {
            throw KilnError.unsupported("reduce: unexpected element type \(T.dtype)")
        }

        func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> Tensor {
            x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: plan.outputShape) { out in
                    let n = plan.reducedCount
                    for o in 0..<plan.outputCount {
                        let base = plan.base(o)
                        var sum: Int64 = op == .prod ? 1 : 0
                        var real: Double = 0
                        var best: T = op == .max ? T.min : T.max
                        for r in 0..<n {
                            let v = src[base + (plan.offsets?[r] ?? r)]
                            let w = Int64(truncatingIfNeeded: v)
                            switch op {
                            case .sum, .mean, .logSum: sum &+= w
                            case .l1: sum &+= (w < 0 ? 0 &- w : w)
                            case .l2, .sumSquare: sum &+= w &* w
                            case .prod: sum &*= w
                            case .max: if v > best { best = v }
                            case .min: if v < best { best = v }
                            case .logSumExp: real += Foundation.exp(Double(v))
                            }
                        }
                        switch op {
                        case .max, .min: out[o] = best
                        case .mean: out[o] = T(truncatingIfNeeded: n == 0 ? 0 : sum / Int64(n))
                        case .l2: out[o] = T(castingFrom: Double(sum).squareRoot())
                        case .logSum: out[o] = T(castingFrom: Foundation.log(Double(sum)))
                        case .logSumExp: out[o] = T(castingFrom: Foundation.log(real))
                        default: out[o] = T(truncatingIfNeeded: sum)
                        }
                    }
                }
            }
        }
    }
}
