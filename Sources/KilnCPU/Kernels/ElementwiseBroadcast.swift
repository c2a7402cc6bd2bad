import KilnIR

/// A pure function of one element; kernels are generic over these so each op is specialised and inlined.
protocol UnaryFunction {
    associatedtype In: TensorScalar
    associatedtype Out: TensorScalar
    func callAsFunction(_ x: In) -> Out
}

protocol BinaryFunction {
    associatedtype In: TensorScalar
    associatedtype Out: TensorScalar
    func callAsFunction(_ a: In, _ b: In) -> Out
}

/// Below this many elements a loop stays on the calling thread.
let elementwiseParallelThreshold = 1 << 15

/// The iteration space of a broadcast: the output shape, reduced to the fewest dimensions by merging
/// neighbours that every input walks the same way (both broadcast or both contiguous). The innermost dimension
/// then has stride 1 or 0 in every input, which the loops exploit.
struct BroadcastPlan {
    let shape: [Int]
    let count: Int
    /// Collapsed outer dimensions (all but the innermost) and each input's strides over them.
    let outer: [Int]
    let outerStrides: [[Int]]
    /// Length of the innermost run and whether each input advances along it.
    let inner: Int
    let innerAdvances: [Bool]
    /// True when every input has the output's shape: one flat loop.
    let isFlat: Bool

    init(_ shapes: [[Int]]) throws {
        let shape = try Broadcast.shape(shapes)
        self.shape = shape
        count = Tensor.elementCount(shape)
        isFlat = shapes.allSatisfy { $0 == shape } || Tensor.elementCount(shape) == 0
        var dims: [Int] = []
        var strides: [[Int]] = Array(repeating: [], count: shapes.count)
        let full = shapes.map { Broadcast.strides(of: $0, broadcastTo: shape) }
        for axis in shape.indices where shape[axis] != 1 {
            let d = shape[axis]
            if let last = dims.indices.last,
                full.indices.allSatisfy({ strides[$0][last] == full[$0][axis] * d })
            {
                dims[last] *= d
                for k in full.indices { strides[k][last] = full[k][axis] }
            } else {
                dims.append(d)
                for k in full.indices { strides[k].append(full[k][axis]) }
            }
        }
        if dims.isEmpty {
            dims = [1]
            strides = strides.map { _ in [0] }
        }
        inner = dims[dims.count - 1]
        innerAdvances = strides.map { $0[$0.count - 1] != 0 }
        outer = Array(dims.dropLast())
        outerStrides = strides.map { Array($0.dropLast()) }
    }

    var rows: Int { inner == 0 ? 0 : count / inner }

    /// Offset of input `k` at the start of `row`.
    @inline(__always)
    func offset(_ k: Int, row: Int) -> Int {
        var rest = row
        var offset = 0
        let strides = outerStrides[k]
        var axis = outer.count - 1
        while axis >= 0 {
            let d = outer[axis]
            offset += (rest % d) * strides[axis]
            rest /= d
            axis -= 1
        }
        return offset
    }

    /// Calls `body` for ranges of rows on up to `threads` threads.
    func forEachRows(threads: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEach(rows, threads: threads, minimumChunk: Swift.max(1, elementwiseParallelThreshold / Swift.max(inner, 1)), body)
    }
}

/// y = f(x) over a contiguous buffer.
func mapUnary<F: UnaryFunction>(
    _ f: F, _ x: UnsafeBufferPointer<F.In>, _ y: UnsafeMutableBufferPointer<F.Out>, threads: Int
) {
    guard let xp = x.baseAddress, let yp = y.baseAddress else { return }
    Parallel.forEach(x.count, threads: threads, minimumChunk: elementwiseParallelThreshold) { range in
        for i in range { yp[i] = f(xp[i]) }
    }
}

func runUnary<F: UnaryFunction>(_ f: F, _ x: Tensor, threads: Int) -> Tensor {
    x.withUnsafeBuffer(as: F.In.self) { input in
        Tensor.build(F.Out.self, shape: x.shape) { out in mapUnary(f, input, out, threads: threads) }
    }
}

/// out = f(a, b) with numpy broadcasting. Same-shape inputs run one flat loop; otherwise rows of the collapsed
/// iteration space, with the innermost run specialised for each input advancing or standing still.
func runBinary<F: BinaryFunction>(_ f: F, _ a: Tensor, _ b: Tensor, threads: Int) throws -> Tensor {
    let plan = try BroadcastPlan([a.shape, b.shape])
    return a.withUnsafeBuffer(as: F.In.self) { ab in
        b.withUnsafeBuffer(as: F.In.self) { bb in
            Tensor.build(F.Out.self, shape: plan.shape) { out in
                guard let ap = ab.baseAddress, let bp = bb.baseAddress, let op = out.baseAddress, plan.count > 0 else {
                    return
                }
                if plan.isFlat {
                    Parallel.forEach(plan.count, threads: threads, minimumChunk: elementwiseParallelThreshold) { r in
                        for i in r { op[i] = f(ap[i], bp[i]) }
                    }
                    return
                }
                let n = plan.inner
                let aStep = plan.innerAdvances[0]
                let bStep = plan.innerAdvances[1]
                plan.forEachRows(threads: threads) { rows in
                    for row in rows {
                        let o = op + row * n
                        let pa = ap + plan.offset(0, row: row)
                        let pb = bp + plan.offset(1, row: row)
                        switch (aStep, bStep) {
                        case (true, true): for i in 0..<n { o[i] = f(pa[i], pb[i]) }
                        case (true, false):
                            let s = pb[0]
                            for i in 0..<n { o[i] = f(pa[i], s) }
                        case (false, true):
                            let s = pa[0]
                            for i in 0..<n { o[i] = f(s, pb[i]) }
                        case (false, false):
                            let v = f(pa[0], pb[0])
                            for i in 0..<n { o[i] = v }
                        }
                    }
                }
            }
        }
    }
}

/// Element index lists of a broadcast, for the rare slow paths (strings, select); not for hot loops.
func broadcastIndices(_ plan: BroadcastPlan, input k: Int) -> [Int] {
    var result: [Int] = []
    result.reserveCapacity(plan.count)
    let step = plan.innerAdvances[k] ? 1 : 0
    for row in 0..<plan.rows {
        let start = plan.offset(k, row: row)
        for i in 0..<plan.inner { result.append(start + i * step) }
    }
    return result
}
