import KilnIR
import KilnRuntime

/// Selection kernels: oneHot, nonZero, compress, reverseSequence, unique.
extension IndexingKernels {
    static let selection: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(OneHotLayer.self) { layer, inputs, _ in
            let indices = try inputs.tensor(0)
            let depthValue = try inputs.tensor(1).scalarDouble()
            let values = try inputs.tensor(2)
            guard values.count == 2, depthValue.isFinite, depthValue >= 0, depthValue < 1e9 else {
                throw KilnError.invalidArgument("OneHot needs depth >= 0 and two values")
            }
            let depth = Int(depthValue)
            let a = try ShapeAxes.normalize(layer.axis, rank: indices.rank + 1)
            var shape = indices.shape
            shape.insert(depth, at: a)
            let outer = Tensor.elementCount(Array(indices.shape[..<a]))
            let inner = Tensor.elementCount(Array(indices.shape[a...]))
            let idx = try indices.int64Values()
            var sources = [Int](repeating: 0, count: Tensor.elementCount(shape))
            for o in 0..<outer {
                for i in 0..<inner {
                    var k = Int(idx[o * inner + i])
                    if k < 0 { k += depth }
                    if k >= 0 && k < depth { sources[(o * depth + k) * inner + i] = 1 }
                }
            }
            let result = pick(values, sources: sources, shape: shape)
            return [.tensor(result)]
        },
        cpuKernel(NonZeroLayer.self) { _, inputs, _ in
            let x = try inputs.tensor(0)
            let flags = try nonZeroFlags(x)
            let strides = Broadcast.strides(x.shape)
            let hits = flags.indices.filter { flags[$0] }
            let rank = max(x.rank, 1)
            return [.tensor(Tensor.build(Int64.self, shape: [rank, hits.count]) { out in
                for (j, e) in hits.enumerated() {
                    for d in 0..<x.rank { out[d * hits.count + j] = Int64((e / strides[d]) % x.shape[d]) }
                    if x.rank == 0 { out[j] = 0 }
                }
            })]
        },
        cpuKernel(CompressLayer.self) { layer, inputs, context in
            var data = try inputs.tensor(0)
            let condition = try nonZeroFlags(try inputs.tensor(1))
            var axis = 0
            if let a = layer.axis {
                axis = try ShapeAxes.normalize(a, rank: data.rank)
            } else {
                data = try data.reshaped([data.count])
            }
            guard condition.count <= data.shape[axis] else {
                throw KilnError.shapeMismatch("Compress condition of \(condition.count) for an axis of \(data.shape[axis])")
            }
            let kept = condition.indices.filter { condition[$0] }
            return [.tensor(try gather(data, axis: axis, indices: kept, indexShape: [kept.count], threads: context.threads))]
        },
        cpuKernel(ReverseSequenceLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let lengths = try inputs.tensor(1).intValues()
            guard x.rank >= 2 else { throw KilnError.shapeMismatch("ReverseSequence needs rank >= 2") }
            let b = try ShapeAxes.normalize(layer.batchAxis, rank: x.rank)
            let t = try ShapeAxes.normalize(layer.timeAxis, rank: x.rank)
            guard lengths.count == x.shape[b], lengths.allSatisfy({ $0 >= 0 && $0 <= x.shape[t] }) else {
                throw KilnError.invalidArgument("sequence_lens \(lengths) for shape \(x.shape)")
            }
            let strides = Broadcast.strides(x.shape)
            let sources = (0..<x.count).map { e -> Int in
                let batch = (e / strides[b]) % x.shape[b]
                let time = (e / strides[t]) % x.shape[t]
                let n = lengths[batch]
                return time < n ? e + (n - 1 - 2 * time) * strides[t] : e
            }
            return [.tensor(pick(x, sources: sources, shape: x.shape))]
        },
        cpuKernel(UniqueLayer.self) { layer, inputs, context in
            try unique(layer, try inputs.tensor(0), threads: context.threads).map { .tensor($0) }
        },
    ]

    /// Whether each element is non-zero (non-empty for strings).
    static func nonZeroFlags(_ x: Tensor) throws -> [Bool] {
        if x.dtype == .string { return x.strings.map { !$0.isEmpty } }
        return try x.doubleValues().map { $0 != 0 }
    }

    /// One element or slice of Unique's input, comparable as ONNX orders them (numbers, then strings).
    struct UniqueKey: Hashable, Comparable {
        var numbers: [Double]
        var strings: [String]
        static func < (a: UniqueKey, b: UniqueKey) -> Bool {
            if a.numbers != b.numbers { return a.numbers.lexicographicallyPrecedes(b.numbers) }
            return a.strings.lexicographicallyPrecedes(b.strings)
        }
    }

    static func unique(_ layer: UniqueLayer, _ input: Tensor, threads: Int) throws -> [Tensor] {
        var x = input
        var axis = 0
        if let a = layer.axis {
            axis = try ShapeAxes.normalize(a, rank: x.rank)
        } else {
            x = try x.reshaped([x.count])
        }
        let length = x.shape[axis]
        let outer = Tensor.elementCount(Array(x.shape[..<axis]))
        let inner = Tensor.elementCount(Array(x.shape[(axis + 1)...]))
        let numbers = x.dtype == .string ? [] : try x.doubleValues()
        let strings = x.dtype == .string ? x.strings : []
        // The key of slice i gathers its elements across the outer and inner extents.
        var keys: [UniqueKey] = []
        keys.reserveCapacity(length)
        for i in 0..<length {
            var key = UniqueKey(numbers: [], strings: [])
            for o in 0..<outer {
                let base = (o * length + i) * inner
                if x.dtype == .string { key.strings += strings[base..<(base + inner)] } else {
                    key.numbers += numbers[base..<(base + inner)]
                }
            }
            keys.append(key)
        }
        var firstIndex: [UniqueKey: Int] = [:]
        var order: [UniqueKey] = []
        var counts: [UniqueKey: Int] = [:]
        for (i, k) in keys.enumerated() {
            if firstIndex[k] == nil {
                firstIndex[k] = i
                order.append(k)
            }
            counts[k, default: 0] += 1
        }
        if layer.sorted { order.sort() }
        var position: [UniqueKey: Int] = [:]
        for (p, k) in order.enumerated() { position[k] = p }
        let first = order.map { firstIndex[$0] ?? 0 }
        let y = try gather(x, axis: axis, indices: first, indexShape: [first.count], threads: threads)
        return [
            y,
            Tensor.int64(first),
            Tensor.int64(keys.map { position[$0] ?? 0 }),
            Tensor.int64(order.map { counts[$0] ?? 0 }),
        ]
    }
}
