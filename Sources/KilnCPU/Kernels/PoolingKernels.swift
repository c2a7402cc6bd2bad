import KilnIR
import KilnRuntime

/// Kernels for pool, maxUnpool and roiPool. Pooling runs in parallel over the N x C planes; the window
/// geometry is resolved once per call into per-axis tap ranges so the inner loops never test bounds.
enum PoolingKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(PoolLayer.self) { layer, inputs, context in try pool(layer, inputs, context.threads) },
        cpuKernel(MaxUnpoolLayer.self) { layer, inputs, _ in
            [.tensor(try maxUnpool(layer, try inputs.tensor(0), try inputs.tensor(1), try inputs.reductionInts(2)))]
        },
        cpuKernel(RoiPoolLayer.self) { layer, inputs, context in
            [.tensor(try roiPool(layer, inputs, context.threads))]
        },
    ]

    /// One spatial axis of a resolved window: per output position, the window start, the valid tap range
    /// lo..<hi, and the taps inside input plus padding (the divisor of averages with count_include_pad), stored
    /// four Ints per position so kernels read them through one pointer.
    struct Axis {
        var input: Int
        var output: Int
        var kernel: Int
        var stride: Int
        var dilation: Int
        var table: [Int]
        /// The outputs whose whole window lies inside the input (no tap clipped by padding), when the taps are
        /// adjacent and there are enough of them for a loop across outputs to pay; empty otherwise. Windows move
        /// monotonically, so these outputs are one run.
        var interior: Range<Int> = 0..<0

        init(input: Int, output: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, paddedEnd: Int) {
            self.input = input
            self.output = output
            self.kernel = kernel
            self.stride = stride
            self.dilation = dilation
            table = []
            table.reserveCapacity(output * 4)
            for o in 0..<output {
                let s = o * stride - padBegin
                let first = s >= 0 ? 0 : (-s + dilation - 1) / dilation
                let last = s >= input ? 0 : min(kernel, (input - 1 - s) / dilation + 1)
                let limit = paddedEnd - padBegin - s
                table += [s, first, max(first, last), limit <= 0 ? 0 : min(kernel, (limit + dilation - 1) / dilation)]
            }
            let whole = (0..<output).filter { table[4 * $0 + 1] == 0 && table[4 * $0 + 2] == kernel }
            if dilation == 1, let lower = whole.first, let upper = whole.last, upper - lower >= 3 {
                interior = lower..<(upper + 1)
            }
        }
    }

    /// An Axis seen through a pointer, for hot loops.
    struct AxisView {
        let input: Int
        let output: Int
        let kernel: Int
        let stride: Int
        let dilation: Int
        let table: UnsafeBufferPointer<Int>
        @inline(__always) func start(_ o: Int) -> Int { table[4 * o] }
        @inline(__always) func lo(_ o: Int) -> Int { table[4 * o + 1] }
        @inline(__always) func hi(_ o: Int) -> Int { table[4 * o + 2] }
        @inline(__always) func padded(_ o: Int) -> Int { table[4 * o + 3] }
        /// `Axis.interior`.
        let interior: Range<Int>
    }

    /// The resolved geometry of one pooling call, as three axes (leading ones of size 1 for 1-D and 2-D).
    struct Plan {
        var axes: [Axis]
        var planes: Int
        var outputShape: [Int]
        var inputPlane: Int { axes.reduce(1) { $0 * $1.input } }

        /// Runs `body` with pointer views of the three axes.
        func withViews<R>(_ body: (AxisView, AxisView, AxisView) -> R) -> R {
            axes[0].table.withUnsafeBufferPointer { t0 in
                axes[1].table.withUnsafeBufferPointer { t1 in
                    axes[2].table.withUnsafeBufferPointer { t2 in
                        func view(_ a: Axis, _ t: UnsafeBufferPointer<Int>) -> AxisView {
                            AxisView(
                                input: a.input, output: a.output, kernel: a.kernel, stride: a.stride,
                                dilation: a.dilation, table: t, interior: a.interior)
                        }
                        return body(view(axes[0], t0), view(axes[1], t1), view(axes[2], t2))
                    }
                }
            }
        }
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

    /// Each tap of a run of whole windows starting at output `first` along `w`, in the per-output loops' order
    /// (depth, height, width): `body` gets the tap's value for the run's first output, the others following
    /// every `w.stride` elements. `row(kd, kh)` is the start of the input row of those taps.
    @inline(__always)
    static func forEachRunTap<T>(
        _ row: (Int, Int) -> UnsafePointer<T>, _ depth: Range<Int>, _ height: Range<Int>, _ w: AxisView, _ first: Int,
        _ body: (UnsafePointer<T>) -> Void
    ) {
        for kd in depth {
            for kh in height {
                let start = row(kd, kh) + w.start(first)
                for kw in 0..<w.kernel { body(start + kw) }
            }
        }
    }

    /// A pool layer's outputs: channels-last through the channels-first kernel, a dequantizing pool as the float
    /// pool over the dequantized values (the reference), stored in its output type.
    static func pool(_ layer: PoolLayer, _ inputs: [Value?], _ threads: Int) throws -> [Value] {
        if let dequantizing = layer.dequantizing {
            var floats = inputs
            floats[0] = .tensor(try Int8Arithmetic.dequantized(try inputs.tensor(0), dequantizing.input))
            var plain = layer
            plain.dequantizing = nil
            return try pool(plain, floats, threads).map { value in
                guard case .tensor(let t) = value, t.dtype != dequantizing.output else { return value }
                return .tensor(try t.cast(to: dequantizing.output))
            }
        }
        guard layer.channelsLast else { return try pool(layer, try inputs.tensor(0), threads).map { .tensor($0) } }
        var first = layer
        first.channelsLast = false
        return try ChannelsLastKernels.run(inputs, permuting: [0], threads: threads) {
            try pool(first, try $0.tensor(0), threads).map { .tensor($0) }
        }
    }

    static func pool(_ layer: PoolLayer, _ x: Tensor, _ threads: Int) throws -> [Tensor] {
        let plan = try Plan(layer, shape: x.shape)
        switch layer.op {
        case .max:
            let run = MaxPoolRun(
                x: x, plan: plan, threads: threads, indices: layer.outputsIndices,
                columnMajor: layer.columnMajorIndices)
            if x.dtype == .bfloat16 { return run.typed(BFloat16.self) }
            return try x.dtype.visitNumeric(run)
        case .average(let include):
            return [
                try x.dtype.visitReductionFloat(
                    AveragePoolRun(x: x, plan: plan, threads: threads, lp: nil, countIncludePad: include), op: "pool")
            ]
        case .lp(let p):
            return [
                try x.dtype.visitReductionFloat(
                    AveragePoolRun(x: x, plan: plan, threads: threads, lp: p, countIncludePad: false), op: "pool")
            ]
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
            let (inPlane, outPlane) = (plan.inputPlane, plan.outputPlane)
            var positions = Tensor(zeros: .int64, shape: indices ? plan.outputShape : [0])
            let values = x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: plan.outputShape) { out in
                    positions = Tensor.build(Int64.self, shape: positions.shape) { idx in
                        plan.withViews { d, h, w in
                            Parallel.forEach(
                                plan.planes, threads: threads, minimumChunk: max(1, 4096 / max(outPlane, 1))
                            ) {
                                range in
                                for p in range {
                                    guard let input = src.baseAddress, let output = out.baseAddress else { return }
                                    if indices {
                                        planeWithIndices(input, output, idx, p, inPlane, outPlane, d, h, w, lowest)
                                    } else {
                                        plane(input + p * inPlane, output + p * outPlane, d, h, w, lowest)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return indices ? [values, positions] : [values]
        }

        @inline(__always)
        private func plane<T: TensorScalar & Comparable>(
            _ src: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ d: AxisView, _ h: AxisView, _ w: AxisView,
            _ lowest: T
        ) {
            let inside = w.interior
            var o = 0
            for od in 0..<d.output {
                let (ds, dlo, dhi) = (d.start(od), d.lo(od), d.hi(od))
                for oh in 0..<h.output {
                    let (hs, hlo, hhi) = (h.start(oh), h.lo(oh), h.hi(oh))
                    // The row's start for tap rows (kd, kh): unchecked math, indices are bounded by the tensor.
                    func row(_ kd: Int, _ kh: Int) -> UnsafePointer<T> {
                        src + (((ds + kd * d.dilation) &* h.input &+ hs &+ kh &* h.dilation) &* w.input)
                    }
                    for ow in 0..<w.output where !inside.contains(ow) {
                        let (ws, wlo, whi) = (w.start(ow), w.lo(ow), w.hi(ow))
                        var best = lowest
                        for kd in dlo..<dhi {
                            for kh in hlo..<hhi {
                                let taps = row(kd, kh) + ws
                                if w.dilation == 1 {
                                    for kw in wlo..<whi where taps[kw] > best { best = taps[kw] }
                                } else {
                                    for kw in wlo..<whi {
                                        let v = taps[kw &* w.dilation]
                                        if v > best { best = v }
                                    }
                                }
                            }
                        }
                        out[o + ow] = best
                    }
                    // Whole windows: each tap across the run of outputs at once (the same taps in the same order
                    // per output as above, so the same result), a loop the compiler vectorizes.
                    if !inside.isEmpty {
                        let run = out + o + inside.lowerBound
                        let count = inside.count
                        for i in 0..<count { run[i] = lowest }
                        forEachRunTap(row, dlo..<dhi, hlo..<hhi, w, inside.lowerBound) { taps in
                            // A select and an unconditional store (a NaN tap never wins, as above).
                            if w.stride == 1 {
                                for i in 0..<count {
                                    let (v, r) = (taps[i], run[i])
                                    run[i] = v > r ? v : r
                                }
                            } else {
                                for i in 0..<count {
                                    let (v, r) = (taps[i &* w.stride], run[i])
                                    run[i] = v > r ? v : r
                                }
                            }
                        }
                    }
                    o += w.output
                }
            }
        }

        private func planeWithIndices<T: TensorScalar & Comparable>(
            _ src: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ idx: UnsafeMutableBufferPointer<Int64>,
            _ p: Int, _ inPlane: Int, _ outPlane: Int, _ d: AxisView, _ h: AxisView, _ w: AxisView, _ lowest: T
        ) {
            let inBase = p * inPlane
            var o = p * outPlane
            for od in 0..<d.output {
                for oh in 0..<h.output {
                    for ow in 0..<w.output {
                        var best = lowest
                        var at = -1
                        for kd in d.lo(od)..<d.hi(od) {
                            let id = d.start(od) + kd * d.dilation
                            for kh in h.lo(oh)..<h.hi(oh) {
                                let row = (id * h.input + h.start(oh) + kh * h.dilation) * w.input + w.start(ow)
                                for kw in w.lo(ow)..<w.hi(ow) {
                                    let v = src[inBase + row + kw * w.dilation]
                                    if v > best || at < 0 {
                                        best = v
                                        at = row + kw * w.dilation
                                    }
                                }
                            }
                        }
                        out[o] = best
                        idx[o] = Int64(at < 0 ? 0 : index(at, p))
                        o += 1
                    }
                }
            }
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
            let (inPlane, outPlane) = (plan.inputPlane, plan.outputPlane)
            let p = lp.map { T.Acc($0) }
            return x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: plan.outputShape) { out in
                    plan.withViews { d, h, w in
                        Parallel.forEach(plan.planes, threads: threads, minimumChunk: max(1, 4096 / max(outPlane, 1))) {
                            range in
                            guard let input = src.baseAddress, let output = out.baseAddress else { return }
                            // The sums of a row's run of whole windows, one buffer for the chunk's planes.
                            let sums = UnsafeMutablePointer<T.Acc>.allocate(capacity: max(w.interior.count, 1))
                            defer { sums.deallocate() }
                            for plane in range {
                                if let p {
                                    lpPlane(input + plane * inPlane, output + plane * outPlane, d, h, w, p)
                                } else {
                                    averagePlane(input + plane * inPlane, output + plane * outPlane, d, h, w, sums)
                                }
                            }
                        }
                    }
                }
            }
        }

        @inline(__always)
        private func averagePlane<T: ReductionFloat>(
            _ src: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ d: AxisView, _ h: AxisView, _ w: AxisView,
            _ sums: UnsafeMutablePointer<T.Acc>
        ) {
            let inside = w.interior
            var o = 0
            for od in 0..<d.output {
                let (ds, dlo, dhi) = (d.start(od), d.lo(od), d.hi(od))
                for oh in 0..<h.output {
                    let (hs, hlo, hhi) = (h.start(oh), h.lo(oh), h.hi(oh))
                    func row(_ kd: Int, _ kh: Int) -> UnsafePointer<T> {
                        src + (((ds + kd * d.dilation) &* h.input &+ hs &+ kh &* h.dilation) &* w.input)
                    }
                    func count(_ ow: Int) -> Int {
                        countIncludePad
                            ? d.padded(od) * h.padded(oh) * w.padded(ow)
                            : (dhi - dlo) * (hhi - hlo) * (w.hi(ow) - w.lo(ow))
                    }
                    for ow in 0..<w.output where !inside.contains(ow) {
                        let (ws, wlo, whi) = (w.start(ow), w.lo(ow), w.hi(ow))
                        var sum: T.Acc = 0
                        for kd in dlo..<dhi {
                            for kh in hlo..<hhi {
                                let taps = row(kd, kh) + ws
                                if w.dilation == 1 {
                                    for kw in wlo..<whi { sum += taps[kw].acc }
                                } else {
                                    for kw in wlo..<whi { sum += taps[kw &* w.dilation].acc }
                                }
                            }
                        }
                        let n = count(ow)
                        out[o + ow] = T(acc: n > 0 ? sum / T.Acc(n) : 0)
                    }
                    // Whole windows: each tap across the run of outputs at once, summed in the same order per
                    // output as above.
                    if !inside.isEmpty {
                        let total = inside.count
                        for i in 0..<total { sums[i] = 0 }
                        forEachRunTap(row, dlo..<dhi, hlo..<hhi, w, inside.lowerBound) { taps in
                            if w.stride == 1 {
                                for i in 0..<total { sums[i] += taps[i].acc }
                            } else {
                                for i in 0..<total { sums[i] += taps[i &* w.stride].acc }
                            }
                        }
                        for i in 0..<total {
                            let n = count(inside.lowerBound + i)
                            out[o + inside.lowerBound + i] = T(acc: n > 0 ? sums[i] / T.Acc(n) : 0)
                        }
                    }
                    o += w.output
                }
            }
        }

        private func lpPlane<T: ReductionFloat>(
            _ src: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ d: AxisView, _ h: AxisView, _ w: AxisView,
            _ p: T.Acc
        ) {
            var o = 0
            for od in 0..<d.output {
                for oh in 0..<h.output {
                    for ow in 0..<w.output {
                        var sum: T.Acc = 0
                        for kd in d.lo(od)..<d.hi(od) {
                            let id = d.start(od) + kd * d.dilation
                            for kh in h.lo(oh)..<h.hi(oh) {
                                let row = src + (id * h.input + h.start(oh) + kh * h.dilation) * w.input + w.start(ow)
                                for kw in w.lo(ow)..<w.hi(ow) {
                                    let v = abs(row[kw * w.dilation].acc)
                                    sum += p == 2 ? v * v : T.Acc.rPow(v, p)
                                }
                            }
                        }
                        out[o] = T(acc: p == 2 ? sum.squareRoot() : T.Acc.rPow(sum, 1 / p))
                        o += 1
                    }
                }
            }
        }
    }
}
