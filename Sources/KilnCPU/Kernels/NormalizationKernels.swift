import KilnIR
import KilnRuntime

/// Kernels for the normalization layer. Per-channel work (batch, instance, group, LRN) runs in parallel over
/// the N x C planes of NCHW inputs.
enum NormalizationKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(NormalizationLayer.self) { layer, inputs, context in
            let x = try inputs.tensor(0)
            let run = NormalizationRun(layer: layer, x: x, inputs: inputs, threads: context.threads)
            return try x.dtype.visitReductionFloat(run, op: "normalization").map { .tensor($0) }
        }
    ]

    /// A small parameter input (scale, bias, mean, variance) as Doubles, checked against the expected count.
    static func parameters(_ inputs: [Value?], _ index: Int, count: Int, name: String) throws -> [Double]? {
        guard let t = try inputs.optionalTensor(index) else { return nil }
        let values = try t.doubleValues()
        if values.count == 1 && count != 1 { return Array(repeating: values[0], count: count) }
        guard values.count == count else {
            throw KilnError.shapeMismatch("\(name) has \(values.count) elements, \(count) expected")
        }
        return values
    }

    /// A parameter broadcast (unidirectionally) to `shape`, flattened.
    static func broadcastParameter(_ inputs: [Value?], _ index: Int, to shape: [Int], name: String) throws -> [Double]?
    {
        guard let t = try inputs.optionalTensor(index) else { return nil }
        let values = try t.doubleValues()
        guard t.rank <= shape.count, (try? Broadcast.shape(t.shape, shape)) == shape else {
            throw KilnError.shapeMismatch("\(name) of shape \(t.shape) does not broadcast to \(shape)")
        }
        let strides = Broadcast.strides(of: t.shape, broadcastTo: shape)
        let count = shape.reduce(1, *)
        if t.count == count { return values }
        var out = [Double](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<count {
            var offset = 0
            for d in shape.indices { offset += index[d] * strides[d] }
            out[i] = values[offset]
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// A tensor of `dtype` from Doubles (for statistics outputs whose type differs from the input's).
    static func tensor(_ dtype: DType, shape: [Int], _ values: [Double]) throws -> Tensor {
        struct Make: ScalarVisitor {
            let shape: [Int]
            let values: [Double]
            func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
                Tensor(shape: shape, scalars: values.map { T(castingFrom: $0) })
            }
        }
        return try dtype.visit(Make(shape: shape, values: values))
    }
}

/// Computes one normalization layer for element type T.
struct NormalizationRun: ReductionFloatVisitor {
    let layer: NormalizationLayer
    let x: Tensor
    let inputs: [Value?]
    let threads: Int

    var channels: Int { x.rank > 1 ? x.shape[1] : 1 }
    var spatial: Int { x.rank > 2 ? x.shape[2...].reduce(1, *) : 1 }

    func visit<T: ReductionFloat>(_ type: T.Type) throws -> [Tensor] {
        switch layer.method {
        case .batch(let training, let momentum):
            return training ? try batchTraining(T.self, momentum: Double(momentum)) : [try batch(T.self)]
        case .instance:
            try requireChannels()
            let (c, s) = (channels, spatial)
            return [try rows(T.self, count: x.shape[0] * c, length: s, segment: s, affineCount: c) { $0 % c }]
        case .group(let groups, let perGroup):
            try requireChannels()
            let (c, s) = (channels, spatial)
            guard c % groups == 0 else {
                throw KilnError.invalidArgument("\(c) channels do not split into \(groups) groups")
            }
            let per = c / groups
            if perGroup {
                return [
                    try rows(T.self, count: x.shape[0] * groups, length: per * s, segment: per * s, affineCount: groups)
                    {
                        $0 % groups
                    }
                ]
            }
            return [
                try rows(T.self, count: x.shape[0] * groups, length: per * s, segment: s, affineCount: c) {
                    ($0 % groups) * per
                }
            ]
        case .layer(let axis):
            return try trailing(T.self, axis: axis, center: true)
        case .rms(let axis):
            return try trailing(T.self, axis: axis, center: false)
        case .meanVariance(let axes):
            return [try meanVariance(T.self, axes: axes)]
        case .lp(let axis, let p):
            return [try lp(T.self, axis: axis, p: p)]
        case .lrn(let size, let alpha, let beta, let bias):
            try requireChannels()
            guard size > 0, size <= Int(Int32.max) else { throw KilnError.invalidArgument("LRN size \(size)") }
            return [try lrn(T.self, size: size, alpha: T.Acc(alpha), beta: T.Acc(beta), bias: T.Acc(bias))]
        }
    }

    private func requireChannels() throws {
        guard x.rank >= 2 else {
            throw KilnError.shapeMismatch("normalization needs an N x C x ... input, got shape \(x.shape)")
        }
    }

    /// Inference batch normalization: y = x * a[c] + b[c].
    private func batch<T: ReductionFloat>(_ type: T.Type) throws -> Tensor {
        try requireChannels()
        let c = channels
        let scale = try NormalizationKernels.parameters(inputs, 1, count: c, name: "scale") ?? []
        let bias = try NormalizationKernels.parameters(inputs, 2, count: c, name: "bias") ?? []
        let mean = try NormalizationKernels.parameters(inputs, 3, count: c, name: "mean") ?? []
        let variance = try NormalizationKernels.parameters(inputs, 4, count: c, name: "variance") ?? []
        guard scale.count == c, bias.count == c, mean.count == c, variance.count == c else {
            throw KilnError.invalidArgument("batch normalization needs scale, bias, mean and variance")
        }
        let eps = Double(layer.epsilon)
        let a = (0..<c).map { T.Acc(scale[$0] / (variance[$0] + eps).squareRoot()) }
        let b = (0..<c).map { T.Acc(bias[$0] - mean[$0] * scale[$0] / (variance[$0] + eps).squareRoot()) }
        return try affinePlanes(T.self, a: a, b: b)
    }

    /// y = x * a[c] + b[c] over every N x C plane.
    private func affinePlanes<T: ReductionFloat>(_ type: T.Type, a: [T.Acc], b: [T.Acc]) throws -> Tensor {
        let (c, s) = (channels, spatial)
        return x.withUnsafeBuffer(as: T.self) { src in
            Tensor.build(T.self, shape: x.shape) { out in
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        Parallel.forEach(x.shape[0] * c, threads: threads, minimumChunk: max(1, 16384 / max(s, 1))) {
                            range in
                            for plane in range {
                                let (ac, bc) = (a[plane % c], b[plane % c])
                                let base = plane * s
                                for i in base..<(base + s) { out[i] = T(acc: src[i].acc * ac + bc) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Training-mode batch normalization: normalizes with the batch statistics and updates the running ones.
    private func batchTraining<T: ReductionFloat>(_ type: T.Type, momentum: Double) throws -> [Tensor] {
        try requireChannels()
        let (n, c, s) = (x.shape[0], channels, spatial)
        let scale = try NormalizationKernels.parameters(inputs, 1, count: c, name: "scale") ?? []
        let bias = try NormalizationKernels.parameters(inputs, 2, count: c, name: "bias") ?? []
        let runningMean = try NormalizationKernels.parameters(inputs, 3, count: c, name: "mean") ?? []
        let runningVar = try NormalizationKernels.parameters(inputs, 4, count: c, name: "variance") ?? []
        guard scale.count == c, bias.count == c, runningMean.count == c, runningVar.count == c else {
            throw KilnError.invalidArgument("batch normalization needs scale, bias, mean and variance")
        }
        var mean = [Double](repeating: 0, count: c)
        var variance = [Double](repeating: 0, count: c)
        x.withUnsafeBuffer(as: T.self) { src in
            for ch in 0..<c {
                var sum = 0.0
                for b in 0..<n { for i in 0..<s { sum += Double(src[(b * c + ch) * s + i].acc) } }
                let m = sum / Double(max(n * s, 1))
                var sq = 0.0
                for b in 0..<n {
                    for i in 0..<s {
                        let d = Double(src[(b * c + ch) * s + i].acc) - m
                        sq += d * d
                    }
                }
                mean[ch] = m
                variance[ch] = sq / Double(max(n * s, 1))
            }
        }
        let eps = Double(layer.epsilon)
        let a = (0..<c).map { T.Acc(scale[$0] / (variance[$0] + eps).squareRoot()) }
        let b = (0..<c).map { T.Acc(bias[$0] - mean[$0] * scale[$0] / (variance[$0] + eps).squareRoot()) }
        let y = try affinePlanes(T.self, a: a, b: b)
        let statsType = try inputs.tensor(3).dtype
        let newMean = (0..<c).map { runningMean[$0] * momentum + mean[$0] * (1 - momentum) }
        let newVar = (0..<c).map { runningVar[$0] * momentum + variance[$0] * (1 - momentum) }
        return [
            y, try NormalizationKernels.tensor(statsType, shape: [c], newMean),
            try NormalizationKernels.tensor(statsType, shape: [c], newVar),
        ]
    }
}
