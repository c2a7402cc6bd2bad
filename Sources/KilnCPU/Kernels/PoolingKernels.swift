import KilnIR
import KilnRuntime

/// Kernels for pool, maxUnpool and roiPool. Pooling runs in parallel over the N x C planes; the window
/// geometry is resolved once per call into per-axis tap ranges so the inner loops never test bounds.
enum PoolingKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(PoolLayer.self) { layer, inputs, context in
            try pool(layer, try inputs.tensor(0), context.threads).map { .tensor($0) }
        },
        cpuKernel(MaxUnpoolLayer.self) { layer, inputs, _ in
            [.tensor(try maxUnpool(layer, try inputs.tensor(0), try inputs.tensor(1), try inputs.reductionInts(2)))]
        },
        cpuKernel(RoiPoolLayer.self) { layer, inputs, context in
            [.tensor(try roiPool(layer, inputs, context.threads))]
        },
    ]

    /// One spatial axis of a resolved window: per output position, the window start and the valid tap range.
    struct Axis {
        var input: Int
        var output: Int
        var dilation: Int
        var start: [Int]
        var lo: [Int]
        var hi: [Int]
        /// Taps inside input plus padding, the divisor of averages with count_include_pad.
        var padded: [Int]

        init(input: Int, output: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, paddedEnd: Int) {
            self.input = input
            self.output = output
            self.dilation = dilation
            start = []
            lo = []
            hi = []
            padded = []
            for o in 0..<output {
                let s = o * stride - padBegin
                let first = s >= 0 ? 0 : (-s + dilation - 1) / dilation
                let last = s >= input ? 0 : min(kernel, (input - 1 - s) / dilation + 1)
                let limit = paddedEnd - padBegin - s
                start.append(s)
                lo.append(first)
                hi.append(max(first, last))
                padded.append(limit <= 0 ? 0 : min(kernel, (limit + dilation - 1) / dilation))
            }
        }
    }

    /// The resolved geometry of one pooling call, as three axes (leading ones of size 1 for 1-D and 2-D).
    struct Plan {
        var axes: [Axis]
        var planes: Int
        var outputShape: [Int]
        var inputPlane: Int { axes.reduce(1) { $0 * $1.input } }
        var outputPlane: Int { axes.reduce(1) { $0 * $1.output } }

        init(_ layer: PoolLayer, shape: [Int]) throws {
            guard shape.count >= 3 else {
                throw KilnError.shapeMismatch("pooling needs an N x C x spatial input, got shape \(shape)")
            }
            let spatial = Array(shape[2...])
            guard spatial.count <= 3 else { throw KilnError.unsupported("pooling over \(spatial.count) spatial axes") }
            let window = layer.window ?? PoolGeometry(kernel: spatial)
            let resolved = try window.resolve(spatial)
            var list: [Axis] = []
            for _ in spatial.count..<3 {
                list.append(Axis(input: 1, output: 1, kernel: 1, stride: 1, dilation: 1, padBegin: 0, paddedEnd: 1))
            }
            for i in spatial.indices {
                list.append(
                    Axis(
                        input: spatial[i], output: resolved.output[i], kernel: window.kernel[i],
                        stride: window.strides[i], dilation: window.dilations[i], padBegin: resolved.padBegin[i],
                        paddedEnd: resolved.paddedEnd[i]))
            }
            axes = list
            planes = shape[0] * shape[1]
            outputShape = Array(shape[..<2]) + resolved.output
        }
    }

    static func pool(_ layer: PoolLayer, _ x: Tensor, _ threads: Int) throws -> [Tensor] {
        let plan = try Plan(layer, shape: x.shape)
        switch layer.op {
        case .max:
            let run = MaxPoolRun(x: x, plan: plan, threads: threads, indices: layer.outputsIndices,
                                 columnMajor: layer.columnMajorIndices)
            if x.dtype == .bfloat16 { return run.typed(BFloat16.self) }
            return try x.dtype.visitNumeric(run)
        case .average(let include):
            return [try x.dtype.visitReductionFloat(
                AveragePoolRun(x: x, plan: plan, threads: threads, lp: nil, countIncludePad: include), op: "pool")]
        case .lp(let p):
            return [try x.dtype.visitReductionFloat(
                AveragePoolRun(x: x, plan: plan, threads: threads, lp: p, countIncludePad: false), op: "pool")]
        }
    }

    struct MaxPoolRun: NumericVisitor {
        let x: Tensor
        let plan: Plan
        let threads: Int
        let indices: Bool
        let columnMajor: Bool

        func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws -> [Tensor] {
            typed(T.self, lowest: -T.infinity)
        }
        func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws -> [Tensor] {
            typed(T.self, lowest: T.min)
        }
        func typed(_ type: BFloat16.Type) -> [Tensor] { typed(BFloat16.self, lowest: BFloat16(-Float.infinity)) }

        func typed<T: TensorScalar & Comparable>(_ type: T.Type, lowest: T) -> [Tensor] {
            let (d, h, w) = (plan.axes[0], plan.axes[1], plan.axes[2])
            let (inPlane, outPlane) = (plan.inputPlane, plan.outputPlane)
            var positions = Tensor(zeros: .int64, shape: indices ? plan.outputShape : [0])
            let values = x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: plan.outputShape) { out in
                    positions = Tensor.build(Int64.self, shape: positions.shape) { idx in
                        let want = indices
                        Parallel.forEach(plan.planes, threads: threads, minimumChunk: max(1, 4096 / max(outPlane, 1))) {
                            range in
                            for p in range {
                                let inBase = p * inPlane
                                var o = p * outPlane
                                for od in 0..<d.output {
                                    for oh in 0..<h.output {
                                        for ow in 0..<w.output {
                                            var best = lowest
                                            var at = -1
                                            for kd in d.lo[od]..<d.hi[od] {
                                                let id = d.start[od] + kd * d.dilation
                                                for kh in h.lo[oh]..<h.hi[oh] {
                                                    let row = inBase + (id * h.input + h.start[oh] + kh * h.dilation) * w.input
                                                    for kw in w.lo[ow]..<w.hi[ow] {
                                                        let v = src[row + w.start[ow] + kw * w.dilation]
                                                        if v > best || at < 0 {
                                                            best = v
                                                            at = row + w.start[ow] + kw * w.dilation
                                                        }
                                                    }
                                                }
                                            }
                                            out[o] = best
                                            if want { idx[o] = Int64(at < 0 ? 0 : index(at - inBase, p)) }
                                            o += 1
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return indices ? [values, positions] : [values]
        }

        /// The ONNX index of in-plane offset `offset` in plane `p`: row-major, or column-major over spatial axes.
        private func index(_ offset: Int, _ p: Int) -> Int {
            let base = p * plan.inputPlane
            guard columnMajor else { return base + offset }
            let (d, h, w) = (plan.axes[0].input, plan.axes[1].input, plan.axes[2].input)
            let iw = offset % w
            let ih = (offset / w) % h
            let id = offset / (w * h)
            // Only the real spatial axes count, so a 2-D pool gives h + w * H.
            let spatial = x.rank - 2
            switch spatial {
            case 1: return base + iw
            case 2: return base + ih + iw * h
            default: return base + id + ih * d + iw * d * h
            }
        }
    }

    struct AveragePoolRun: ReductionFloatVisitor {
        let x: Tensor
        let plan: Plan
        let threads: Int
        /// The Lp norm's p for Lp pooling; nil for averages.
        let lp: Float?
        let countIncludePad: Bool

        func visit<T: ReductionFloat>(_ type: T.Type) throws -> Tensor {
            let (d, h, w) = (plan.axes[0], plan.axes[1], plan.axes[2])
            let (inPlane, outPlane) = (plan.inputPlane, plan.outputPlane)
            let p = lp.map { T.Acc($0) }
            let include = countIncludePad
            return x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: plan.outputShape) { out in
                    Parallel.forEach(plan.planes, threads: threads, minimumChunk: max(1, 4096 / max(outPlane, 1))) {
                        range in
                        for plane in range {
                            let inBase = plane * inPlane
                            var o = plane * outPlane
                            for od in 0..<d.output {
                                for oh in 0..<h.output {
                                    for ow in 0..<w.output {
                                        var sum: T.Acc = 0
                                        for kd in d.lo[od]..<d.hi[od] {
                                            let id = d.start[od] + kd * d.dilation
                                            for kh in h.lo[oh]..<h.hi[oh] {
                                                let row = inBase + (id * h.input + h.start[oh] + kh * h.dilation) * w.input
                                                    + w.start[ow]
                                                if let p {
                                                    for kw in w.lo[ow]..<w.hi[ow] {
                                                        let v = abs(src[row + kw * w.dilation].acc)
                                                        sum += p == 2 ? v * v : T.Acc.rPow(v, p)
                                                    }
                                                } else {
                                                    for kw in w.lo[ow]..<w.hi[ow] { sum += src[row + kw * w.dilation].acc }
                                                }
                                            }
                                        }
                                        if let p {
                                            out[o] = T(acc: p == 2 ? sum.squareRoot() : T.Acc.rPow(sum, 1 / p))
                                        } else {
                                            let count = include
                                                ? d.padded[od] * h.padded[oh] * w.padded[ow]
                                                : (d.hi[od] - d.lo[od]) * (h.hi[oh] - h.lo[oh]) * (w.hi[ow] - w.lo[ow])
                                            out[o] = T(acc: count > 0 ? sum / T.Acc(count) : 0)
                                        }
                                        o += 1
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
