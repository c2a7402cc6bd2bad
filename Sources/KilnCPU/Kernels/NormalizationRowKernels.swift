import KilnIR
import KilnRuntime

extension NormalizationRun {
    /// Normalizes `count` contiguous rows of `length` elements by their own mean and variance, then applies
    /// scale and bias (inputs 1 and 2) that are constant over runs of `segment` elements; the parameters of
    /// row r's k-th segment are at `affineBase(r) + k`.
    func rows<T: ReductionFloat>(
        _ type: T.Type, count: Int, length: Int, segment: Int, affineCount: Int, affineBase: (Int) -> Int
    ) throws -> Tensor {
        let scale =
            try NormalizationKernels.parameters(inputs, 1, count: affineCount, name: "scale")
            ?? Array(repeating: 1, count: affineCount)
        let bias =
            try NormalizationKernels.parameters(inputs, 2, count: affineCount, name: "bias")
            ?? Array(repeating: 0, count: affineCount)
        let sa = scale.map { T.Acc($0) }
        let ba = bias.map { T.Acc($0) }
        let eps = T.Acc(layer.epsilon)
        let segments = length / max(segment, 1)
        return x.withUnsafeBuffer(as: T.self) { src in
            Tensor.build(T.self, shape: x.shape) { out in
                Parallel.forEach(count, threads: threads, minimumChunk: max(1, 8192 / max(length, 1))) { range in
                    for row in range {
                        let base = row * length
                        var sum: T.Acc = 0
                        for i in base..<(base + length) { sum += src[i].acc }
                        let mean = sum / T.Acc(max(length, 1))
                        var sq: T.Acc = 0
                        for i in base..<(base + length) {
                            let d = src[i].acc - mean
                            sq += d * d
                        }
                        let inv = 1 / (sq / T.Acc(max(length, 1)) + eps).squareRoot()
                        let first = affineBase(row)
                        for k in 0..<segments {
                            let a = sa[first + k] * inv
                            let b = ba[first + k] - mean * a
                            let start = base + k * segment
                            for i in start..<(start + segment) { out[i] = T(acc: src[i].acc * a + b) }
                        }
                    }
                }
            }
        }
    }

    /// Layer (center) or RMS normalization over the axes from `axis` on, with scale and bias broadcast to them.
    func trailing<T: ReductionFloat>(_ type: T.Type, axis raw: Int, center: Bool) throws -> [Tensor] {
        let axis = try reductionAxis(raw, rank: x.rank)
        let tail = Array(x.shape[axis...])
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = tail.reduce(1, *)
        let scale =
            (try NormalizationKernels.broadcastParameter(inputs, 1, to: tail, name: "scale"))?.map { T.Acc($0) }
            ?? Array(repeating: 1, count: inner)
        let bias =
            center
            ? (try NormalizationKernels.broadcastParameter(inputs, 2, to: tail, name: "bias"))?.map { T.Acc($0) } : nil
        let eps = T.Acc(layer.epsilon)
        var means = [Double](repeating: 0, count: outer)
        var invs = [Double](repeating: 0, count: outer)
        let y = x.withUnsafeBuffer(as: T.self) { src in
            Tensor.build(T.self, shape: x.shape) { out in
                means.withUnsafeMutableBufferPointer { means in
                    invs.withUnsafeMutableBufferPointer { invs in
                        Parallel.forEach(outer, threads: threads, minimumChunk: max(1, 8192 / max(inner, 1))) {
                            range in
                            for row in range {
                                let base = row * inner
                                var mean: T.Acc = 0
                                if center {
                                    for i in base..<(base + inner) { mean += src[i].acc }
                                    mean /= T.Acc(max(inner, 1))
                                }
                                var sq: T.Acc = 0
                                for i in base..<(base + inner) {
                                    let d = src[i].acc - mean
                                    sq += d * d
                                }
                                let inv = 1 / (sq / T.Acc(max(inner, 1)) + eps).squareRoot()
                                means[row] = Double(mean)
                                invs[row] = Double(inv)
                                if let bias {
                                    for i in 0..<inner {
                                        out[base + i] = T(acc: (src[base + i].acc - mean) * inv * scale[i] + bias[i])
                                    }
                                } else {
                                    for i in 0..<inner {
                                        out[base + i] = T(acc: (src[base + i].acc - mean) * inv * scale[i])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard center else { return [y] }
        let statsShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis)
        return [
            y, try NormalizationKernels.tensor(layer.statisticsType, shape: statsShape, means),
            try NormalizationKernels.tensor(layer.statisticsType, shape: statsShape, invs),
        ]
    }

    /// (x - mean) / (std + epsilon) with statistics over `axes` (ONNX MeanVarianceNormalization).
    func meanVariance<T: ReductionFloat>(_ type: T.Type, axes: [Int]) throws -> Tensor {
        let reduced = try Set(axes.map { try reductionAxis($0, rank: x.rank) }).sorted()
        let plan = ReductionKernels.ReducePlan(shape: x.shape, reduced: reduced, keepDims: true)
        let n = plan.reducedCount
        let eps = T.Acc(layer.epsilon)
        return x.withUnsafeBuffer(as: T.self) { src in
            Tensor.build(T.self, shape: x.shape) { out in
                for o in 0..<plan.outputCount {
                    let base = plan.base(o)
                    var sum: T.Acc = 0
                    var sq: T.Acc = 0
                    for r in 0..<n {
                        let v = src[base + (plan.offsets?[r] ?? r)].acc
                        sum += v
                        sq += v * v
                    }
                    let mean = sum / T.Acc(max(n, 1))
                    let std = max(sq / T.Acc(max(n, 1)) - mean * mean, 0).squareRoot()
                    for r in 0..<n {
                        let i = base + (plan.offsets?[r] ?? r)
                        out[i] = T(acc: (src[i].acc - mean) / (std + eps))
                    }
                }
            }
        }
    }

    /// x / ||x||_p along `axis`.
    func lp<T: ReductionFloat>(_ type: T.Type, axis raw: Int, p: Int) throws -> Tensor {
        let axis = try reductionAxis(raw, rank: x.rank)
        let (outer, n, inner) = reductionSplit(x.shape, axis: axis)
        return x.withUnsafeBuffer(as: T.self) { src in
            Tensor.build(T.self, shape: x.shape) { out in
                for o in 0..<outer {
                    for j in 0..<inner {
                        let base = o * n * inner + j
                        var norm: T.Acc = 0
                        for i in 0..<n {
                            let v = src[base + i * inner].acc
                            norm += p == 1 ? abs(v) : v * v
                        }
                        if p == 2 { norm = norm.squareRoot() }
                        for i in 0..<n {
                            let v = src[base + i * inner].acc
                            out[base + i * inner] = T(acc: norm == 0 ? 0 : v / norm)
                        }
                    }
                }
            }
        }
    }

    /// Local response normalization across channels:
    /// y = x / (bias + alpha / size * sum of squares over nearby channels)^beta.
    func lrn<T: ReductionFloat>(_ type: T.Type, size: Int, alpha: T.Acc, beta: T.Acc, bias: T.Acc) throws -> Tensor {
        let (c, s) = (channels, spatial)
        let before = (size - 1) / 2
        let after = size - 1 - before
        let k = alpha / T.Acc(size)
        return x.withUnsafeBuffer(as: T.self) { src in
            Tensor.build(T.self, shape: x.shape) { out in
                Parallel.forEach(x.shape[0] * c, threads: threads, minimumChunk: max(1, 4096 / max(s * size, 1))) {
                    range in
                    var sums = [T.Acc](repeating: 0, count: s)
                    sums.withUnsafeMutableBufferPointer { sums in
                        // Pointer rows and plain 0..<s loops (no checked index arithmetic) so the loops vectorize.
                        guard let acc = sums.baseAddress, let input = src.baseAddress, let output = out.baseAddress
                        else { return }
                        for plane in range {
                            let (n, ch) = (plane / c, plane % c)
                            for i in 0..<s { acc[i] = 0 }
                            for other in max(0, ch - before)...min(c - 1, ch + after) {
                                let row = input + (n * c + other) * s
                                for i in 0..<s {
                                    let v = row[i].acc
                                    acc[i] += v * v
                                }
                            }
                            let xs = input + plane * s
                            let ys = output + plane * s
                            if beta == 0.75 {
                                // x^-0.75 = 1 / (sqrt(x) * sqrt(sqrt(x))): much cheaper than pow.
                                for i in 0..<s {
                                    let r = (bias + k * acc[i]).squareRoot()
                                    ys[i] = T(acc: xs[i].acc / (r * r.squareRoot()))
                                }
                            } else {
                                for i in 0..<s { ys[i] = T(acc: xs[i].acc / T.Acc.rPow(bias + k * acc[i], beta)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
