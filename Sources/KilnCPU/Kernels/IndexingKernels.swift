import KilnIR
import KilnRuntime

/// Kernels for gather, scatter and selection layers. Indices from tensors are range-checked and throw.
enum IndexingKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = core + selection

    static let core: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(GatherLayer.self) { layer, inputs, context in
            let data = try inputs.tensor(0)
            let indices = try inputs.tensor(1)
            let a = try ShapeAxes.normalize(layer.axis, rank: data.rank)
            return [.tensor(try gather(data, axis: a, indices: indices.intValues(), indexShape: indices.shape,
                threads: context.threads))]
        },
        cpuKernel(GatherElementsLayer.self) { layer, inputs, _ in
            let data = try inputs.tensor(0)
            let indices = try inputs.tensor(1)
            let a = try ShapeAxes.normalize(layer.axis, rank: data.rank)
            guard indices.rank == data.rank else {
                throw KilnError.shapeMismatch("GatherElements indices \(indices.shape) for data \(data.shape)")
            }
            let idx = try indices.intValues()
            let ds = Broadcast.strides(data.shape)
            let istr = Broadcast.strides(indices.shape)
            let sources = try idx.indices.map { e -> Int in
                var offset = 0
                for d in 0..<data.rank {
                    var c = (e / istr[d]) % indices.shape[d]
                    if d == a { c = try checked(idx[e], data.shape[a]) }
                    offset += c * ds[d]
                }
                return offset
            }
            return [.tensor(pick(data, sources: sources, shape: indices.shape))]
        },
        cpuKernel(GatherNDLayer.self) { layer, inputs, _ in
            let data = try inputs.tensor(0)
            let indices = try inputs.tensor(1)
            let plan = try ndPlan(data: data.shape, indices: indices.shape, batchDims: layer.batchDims)
            let idx = try indices.intValues()
            var sources: [Int] = []
            sources.reserveCapacity(plan.tuples * plan.slice)
            for t in 0..<plan.tuples {
                let base = try plan.offset(tuple: t, indices: idx, dataShape: data.shape)
                for i in 0..<plan.slice { sources.append(base + i) }
            }
            return [.tensor(pick(data, sources: sources, shape: plan.outputShape))]
        },
        cpuKernel(ScatterElementsLayer.self) { layer, inputs, _ in
            let data = try inputs.tensor(0)
            let indices = try inputs.tensor(1)
            let updates = try inputs.tensor(2)
            let a = try ShapeAxes.normalize(layer.axis, rank: data.rank)
            guard indices.shape == updates.shape, indices.rank == data.rank else {
                throw KilnError.shapeMismatch("ScatterElements indices \(indices.shape), updates \(updates.shape)")
            }
            let idx = try indices.intValues()
            let ds = Broadcast.strides(data.shape)
            let istr = Broadcast.strides(indices.shape)
            let targets = try idx.indices.map { e -> Int in
                var offset = 0
                for d in 0..<data.rank {
                    var c = (e / istr[d]) % indices.shape[d]
                    if d == a { c = try checked(idx[e], data.shape[a]) }
                    offset += c * ds[d]
                }
                return offset
            }
            return [.tensor(try scatter(data, updates: updates, targets: targets, reduction: layer.reduction))]
        },
        cpuKernel(ScatterNDLayer.self) { layer, inputs, _ in
            let data = try inputs.tensor(0)
            let indices = try inputs.tensor(1)
            let updates = try inputs.tensor(2)
            let plan = try ndPlan(data: data.shape, indices: indices.shape, batchDims: 0)
            guard updates.shape == plan.outputShape else {
                throw KilnError.shapeMismatch("ScatterND updates \(updates.shape), expected \(plan.outputShape)")
            }
            let idx = try indices.intValues()
            var targets: [Int] = []
            targets.reserveCapacity(plan.tuples * plan.slice)
            for t in 0..<plan.tuples {
                let base = try plan.offset(tuple: t, indices: idx, dataShape: data.shape)
                for i in 0..<plan.slice { targets.append(base + i) }
            }
            return [.tensor(try scatter(data, updates: updates, targets: targets, reduction: layer.reduction))]
        },
    ]

    /// A non-negative index into an axis of `length`, or an error.
    @inline(__always)
    static func checked(_ index: Int, _ length: Int) throws -> Int {
        let i = index < 0 ? index + length : index
        guard i >= 0 && i < length else {
            throw KilnError.invalidArgument("index \(index) is out of range for an axis of \(length)")
        }
        return i
    }

    /// Gathers slices of `axis` at `indices` (negative counts from the end).
    static func gather(_ data: Tensor, axis a: Int, indices: [Int], indexShape: [Int], threads: Int) throws -> Tensor {
        let length = data.shape[a]
        let idx = try indices.map { try checked($0, length) }
        let outer = Tensor.elementCount(Array(data.shape[..<a]))
        let inner = Tensor.elementCount(Array(data.shape[(a + 1)...]))
        let shape = Array(data.shape[..<a]) + indexShape + Array(data.shape[(a + 1)...])
        if data.dtype == .string {
            let src = data.storage.strings
            var out: [String] = []
            out.reserveCapacity(outer * idx.count * inner)
            for o in 0..<outer {
                for i in idx { out += src[((o * length + i) * inner)..<((o * length + i + 1) * inner)] }
            }
            return Tensor(shape: shape, strings: out)
        }
        let result = Tensor(zeros: data.dtype, shape: shape)
        let es = data.dtype.byteSize
        let src = UnsafeRawPointer(data.storage.bytes)
        let dst = result.storage.bytes
        let bytes = inner * es
        idx.withUnsafeBufferPointer { ib in
            Parallel.forEach(outer * ib.count, threads: threads, minimumChunk: max(1, 32768 / max(bytes, 1))) { range in
                for r in range {
                    let o = r / ib.count
                    (dst + r * bytes).copyMemory(from: src + (o * length + ib[r % ib.count]) * bytes, byteCount: bytes)
                }
            }
        }
        return result
    }

    /// A tensor of `shape` whose element e is `data`'s element `sources[e]` (offsets already checked).
    static func pick(_ data: Tensor, sources: [Int], shape: [Int]) -> Tensor {
        if data.dtype == .string {
            let src = data.storage.strings
            return Tensor(shape: shape, strings: sources.map { src[$0] })
        }
        let result = Tensor(zeros: data.dtype, shape: shape)
        let es = data.dtype.byteSize
        for (e, s) in sources.enumerated() {
            (result.storage.bytes + e * es).copyMemory(from: data.storage.bytes + s * es, byteCount: es)
        }
        return result
    }

    /// The geometry of GatherND / ScatterND: index tuples of depth `depth` address slices of `slice` elements.
    struct NDPlan {
        var batchDims: Int
        var depth: Int
        var tuples: Int
        var tuplesPerBatch: Int
        var slice: Int
        var outputShape: [Int]

        func offset(tuple t: Int, indices: [Int], dataShape: [Int]) throws -> Int {
            let batch = t / max(tuplesPerBatch, 1)
            let strides = Broadcast.strides(dataShape)
            var offset = 0
            // The batch index runs over the leading batchDims axes in row-major order.
            var rem = batch
            for d in stride(from: batchDims - 1, through: 0, by: -1) {
                offset += (rem % dataShape[d]) * strides[d]
                rem /= dataShape[d]
            }
            for k in 0..<depth {
                let d = batchDims + k
                offset += try checked(indices[t * depth + k], dataShape[d]) * strides[d]
            }
            return offset
        }
    }

    static func ndPlan(data: [Int], indices: [Int], batchDims b: Int) throws -> NDPlan {
        guard let depth = indices.last, indices.count > b, b >= 0, b + depth <= data.count,
            Array(data[..<b]) == Array(indices[..<b])
        else { throw KilnError.shapeMismatch("ND indices \(indices) (batch_dims \(b)) for data \(data)") }
        let tuples = Tensor.elementCount(Array(indices.dropLast()))
        let batches = Tensor.elementCount(Array(data[..<b]))
        return NDPlan(
            batchDims: b, depth: depth, tuples: tuples, tuplesPerBatch: batches == 0 ? 0 : tuples / batches,
            slice: Tensor.elementCount(Array(data[(b + depth)...])),
            outputShape: Array(indices.dropLast()) + Array(data[(b + depth)...]))
    }

    /// A copy of `data` with `updates[e]` combined into element `targets[e]`, in order.
    static func scatter(_ data: Tensor, updates: Tensor, targets: [Int], reduction: ScatterReduction) throws -> Tensor {
        guard updates.dtype == data.dtype, targets.count == updates.count else {
            throw KilnError.typeMismatch("scatter updates \(updates.type) for data \(data.type)")
        }
        if data.dtype == .string {
            guard reduction == .none else { throw KilnError.unsupported("scatter reduction on strings") }
            var s = data.strings
            let u = updates.strings
            for (e, t) in targets.enumerated() { s[t] = u[e] }
            return Tensor(shape: data.shape, strings: s)
        }
        let result = try data.withUnsafeRawBytes { try Tensor(dtype: data.dtype, shape: data.shape, rawBytes: $0) }
        let es = data.dtype.byteSize
        if reduction == .none {
            for (e, t) in targets.enumerated() {
                (result.storage.bytes + t * es).copyMemory(from: updates.storage.bytes + e * es, byteCount: es)
            }
            return result
        }
        if data.dtype == .bfloat16 {
            // bfloat16 has no native arithmetic: combine in Float.
            let out = result.storage.bytes.bindMemory(to: BFloat16.self, capacity: data.count)
            let u = updates.storage.bytes.bindMemory(to: BFloat16.self, capacity: updates.count)
            for (e, t) in targets.enumerated() {
                out[t] = BFloat16(Scatterer.combine(out[t].floatValue, u[e].floatValue, reduction))
            }
            return result
        }
        try data.dtype.visitNumeric(Scatterer(result: result, updates: updates, targets: targets, reduction: reduction))
        return result
    }

    struct Scatterer: NumericVisitor {
        let result: Tensor
        let updates: Tensor
        let targets: [Int]
        let reduction: ScatterReduction

        static func combine<T: BinaryFloatingPoint>(_ a: T, _ b: T, _ r: ScatterReduction) -> T {
            switch r {
            case .none: b
            case .add: a + b
            case .mul: a * b
            case .max: Swift.max(a, b)
            case .min: Swift.min(a, b)
            }
        }

        func apply<T: TensorScalar>(_ type: T.Type, _ f: (T, T) -> T) {
            let out = result.storage.bytes.bindMemory(to: T.self, capacity: result.count)
            let u = updates.storage.bytes.bindMemory(to: T.self, capacity: updates.count)
            for (e, t) in targets.enumerated() { out[t] = f(out[t], u[e]) }
        }

        func visitFloat<T: TensorScalar & BinaryFloatingPoint>(_ type: T.Type) throws {
            apply(T.self) { Self.combine($0, $1, reduction) }
        }

        func visitInteger<T: TensorScalar & FixedWidthInteger>(_ type: T.Type) throws {
            let r = reduction
            apply(T.self) { a, b in
                switch r {
                case .none: b
                case .add: a &+ b
                case .mul: a &* b
                case .max: Swift.max(a, b)
                case .min: Swift.min(a, b)
                }
            }
        }
    }
}
