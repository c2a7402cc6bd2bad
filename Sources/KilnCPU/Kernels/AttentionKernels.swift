import Foundation
import KilnIR
import KilnRuntime

/// Attention and RotaryEmbedding reference kernels (registered through the recurrent family's table).
/// Compute in Float; float16/bfloat16 probabilities are rounded to the input type before the value product,
/// as the ONNX reference does.
enum AttentionKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(AttentionLayer.self) { layer, inputs, context in
            try AttentionKernel.run(layer, inputs, threads: context.threads)
        },
        cpuKernel(RotaryEmbeddingLayer.self) { layer, inputs, _ in [.tensor(try RotaryKernel.run(layer, inputs))] },
        cpuKernel(LinearAttentionLayer.self) { layer, inputs, _ in try LinearAttentionKernel.run(layer, inputs) },
        (FlexAttentionLayer.kind, FlexAttentionKernel.factory),
        cpuKernel(FusedAttentionLayer.self) { layer, inputs, context in
            [.tensor(try FusedAttentionKernel.run(layer, inputs, threads: context.threads))]
        },
    ]
}

/// A tensor as [batch, heads, length, dim] floats.
struct AttentionHeads {
    var data: [Float]
    let batch: Int, heads: Int, length: Int, dim: Int

    init(data: [Float], batch: Int, heads: Int, length: Int, dim: Int) {
        self.data = data
        self.batch = batch
        self.heads = heads
        self.length = length
        self.dim = dim
    }

    /// Reads a 4-D tensor, or a 3-D [batch, length, heads * dim] one split into `heads`.
    init(_ t: Tensor, heads: Int?, _ name: String) throws {
        let values = try QuantValues.floats(t)
        if t.rank == 4 {
            self.init(data: values, batch: t.shape[0], heads: t.shape[1], length: t.shape[2], dim: t.shape[3])
            return
        }
        guard t.rank == 3, let heads, heads > 0, t.shape[2] % heads == 0 else {
            throw KilnError.shapeMismatch("\(name) of shape \(t.shape) cannot be split into \(heads ?? 0) heads")
        }
        let (b, l, d) = (t.shape[0], t.shape[1], t.shape[2] / heads)
        var data = [Float](repeating: 0, count: values.count)
        for bi in 0..<b {
            for li in 0..<l {
                for h in 0..<heads {
                    for di in 0..<d {
                        data[((bi * heads + h) * l + li) * d + di] = values[(bi * l + li) * heads * d + h * d + di]
                    }
                }
            }
        }
        self.init(data: data, batch: b, heads: heads, length: l, dim: d)
    }

    /// `past` followed by `self` along the length axis.
    func appending(to past: AttentionHeads) throws -> AttentionHeads {
        guard past.batch == batch, past.heads == heads, past.dim == dim else {
            throw KilnError.shapeMismatch(
                "past cache [\(past.batch),\(past.heads),_,\(past.dim)] does not match [\(batch),\(heads),_,\(dim)]")
        }
        let total = past.length + length
        var data = [Float](repeating: 0, count: batch * heads * total * dim)
        for bh in 0..<(batch * heads) {
            for l in 0..<past.length {
                for d in 0..<dim { data[(bh * total + l) * dim + d] = past.data[(bh * past.length + l) * dim + d] }
            }
            for l in 0..<length {
                for d in 0..<dim {
                    data[(bh * total + past.length + l) * dim + d] = self.data[(bh * length + l) * dim + d]
                }
            }
        }
        return AttentionHeads(data: data, batch: batch, heads: heads, length: total, dim: dim)
    }
}

enum AttentionKernel {
    static func run(_ layer: AttentionLayer, _ inputs: [Value?], threads: Int) throws -> [Value] {
        let qt = try inputs.tensor(0)
        let dtype = qt.dtype
        let threeD = qt.rank == 3
        if threeD && (layer.qNumHeads == nil || layer.kvNumHeads == nil) {
            throw KilnError.invalidModel("3-D attention inputs need q_num_heads and kv_num_heads")
        }
        var q = try AttentionHeads(qt, heads: layer.qNumHeads, "Q")
        var k = try AttentionHeads(inputs.tensor(1), heads: layer.kvNumHeads, "K")
        var v = try AttentionHeads(inputs.tensor(2), heads: layer.kvNumHeads, "V")
        let pastKey = try inputs.optionalTensor(4)
        let pastValue = try inputs.optionalTensor(5)
        guard (pastKey == nil) == (pastValue == nil) else {
            throw KilnError.invalidArgument("past_key and past_value must be given together")
        }
        var pastLength = 0
        if let pastKey, let pastValue {
            let pk = try AttentionHeads(pastKey, heads: nil, "past_key")
            k = try k.appending(to: pk)
            v = try v.appending(to: AttentionHeads(pastValue, heads: nil, "past_value"))
            pastLength = pk.length
        }
        let batch = q.batch
        let qHeads = q.heads
        let kvHeads = k.heads
        let s = q.length
        let total = k.length
        guard k.batch == batch, v.batch == batch, v.heads == kvHeads, v.length == total, k.dim == q.dim,
            kvHeads > 0, qHeads % kvHeads == 0
        else {
            throw KilnError.shapeMismatch(
                "Q, K and V shapes do not agree (heads \(qHeads)/\(kvHeads), head size \(q.dim)/\(k.dim))")
        }
        let nonpad = try inputs.optionalTensor(6)?.intValues()
        if let nonpad, nonpad.count != batch {
            throw KilnError.shapeMismatch("nonpad_kv_seqlen has \(nonpad.count) entries for batch \(batch)")
        }
        let mask = try AttentionMask(inputs.optionalTensor(3), batch: batch, heads: qHeads, queries: s, keys: total)
        // As the reference: Q and K are each multiplied by sqrt(scale) in the input type, and every step rounds
        // to that type (a no-op for float32), so float16 results match bit for bit in most places.
        let scale = layer.scale ?? 1 / Float(q.dim).squareRoot()
        let root = QuantValues.narrowed(scale.squareRoot(), dtype)
        for i in q.data.indices { q.data[i] = QuantValues.narrowed(q.data[i] * root, dtype) }
        var scaledK = k.data
        for i in scaledK.indices { scaledK[i] = QuantValues.narrowed(scaledK[i] * root, dtype) }
        let group = qHeads / kvHeads
        let vd = v.dim
        var y = [Float](repeating: 0, count: batch * qHeads * s * vd)
        var scores = [Float](repeating: 0, count: batch * qHeads * s * total)
        y.withUnsafeMutableBufferPointer { yBuffer in
            scores.withUnsafeMutableBufferPointer { scoreBuffer in
                let yOut = UncheckedSendable(yBuffer)
                let scoreOut = UncheckedSendable(scoreBuffer)
                Parallel.forEach(batch * qHeads, threads: threads) { range in
                    var bias = [Float](repeating: 0, count: total)
                    var x = [Float](repeating: 0, count: total)
                    for job in range {
                        let b = job / qHeads
                        let h = job % qHeads
                        let kvh = h / group
                        // Causal and window frontiers: internal cache, external cache (nonpad) or none.
                        let offset = pastKey != nil ? pastLength : (nonpad.map { $0[b] - s } ?? 0)
                        for i in 0..<s {
                            var allMasked = true
                            for j in 0..<total {
                                var bj = mask.bias(b, h, i, j)
                                let diff = i + offset - j
                                if layer.isCausal && diff < 0 { bj = -.infinity }
                                if layer.leftWindow >= 0 && diff > layer.leftWindow { bj = -.infinity }
                                if layer.rightWindow >= 0 && -diff > layer.rightWindow { bj = -.infinity }
                                if let nonpad, j >= nonpad[b] { bj = -.infinity }
                                bias[j] = bj
                                if bj != -.infinity { allMasked = false }
                            }
                            let qBase = ((b * qHeads + h) * s + i) * q.dim
                            var m: Float = -.infinity
                            var sawNaN = false
                            for j in 0..<total {
                                let kBase = ((b * kvHeads + kvh) * total + j) * k.dim
                                var dot: Float = 0
                                for d in 0..<q.dim { dot += q.data[qBase + d] * scaledK[kBase + d] }
                                var score = QuantValues.narrowed(dot, dtype)
                                if layer.softcap > 0 {
                                    let t = tanhf(QuantValues.narrowed(score / layer.softcap, dtype))
                                    score = QuantValues.narrowed(layer.softcap * QuantValues.narrowed(t, dtype), dtype)
                                }
                                let row = (job * s + i) * total + j
                                x[j] = QuantValues.narrowed(score + bias[j], dtype)
                                scoreOut.value[row] = layer.scoreOutput == .withBias ? x[j] : score
                                if x[j].isNaN { sawNaN = true } else if x[j] > m { m = x[j] }
                            }
                            if sawNaN { m = .nan }
                            var sum: Float = 0
                            for j in 0..<total {
                                x[j] =
                                    m == -.infinity
                                    ? 0 : QuantValues.narrowed(expf(QuantValues.narrowed(x[j] - m, dtype)), dtype)
                                sum += x[j]
                            }
                            sum = QuantValues.narrowed(sum, dtype)
                            if sum == 0 { sum = 1 }
                            for j in 0..<total {
                                let p = allMasked ? 0 : QuantValues.narrowed(x[j] / sum, dtype)
                                x[j] = p
                                if layer.scoreOutput == .afterSoftmax { scoreOut.value[(job * s + i) * total + j] = p }
                            }
                            let yBase = (job * s + i) * vd
                            for d in 0..<vd {
                                var acc: Float = 0
                                for j in 0..<total { acc += x[j] * v.data[((b * kvHeads + kvh) * total + j) * vd + d] }
                                yOut.value[yBase + d] = QuantValues.narrowed(acc, dtype)
                            }
                        }
                    }
                }
            }
        }
        var yShape = [batch, qHeads, s, vd]
        if threeD {
            var permuted = [Float](repeating: 0, count: y.count)
            for b in 0..<batch {
                for h in 0..<qHeads {
                    for i in 0..<s {
                        for d in 0..<vd {
                            permuted[((b * s + i) * qHeads + h) * vd + d] = y[((b * qHeads + h) * s + i) * vd + d]
                        }
                    }
                }
            }
            y = permuted
            yShape = [batch, s, qHeads * vd]
        }
        return [
            .tensor(try QuantValues.tensor(dtype, shape: yShape, y)),
            .tensor(try QuantValues.tensor(dtype, shape: [batch, kvHeads, total, k.dim], k.data)),
            .tensor(try QuantValues.tensor(dtype, shape: [batch, kvHeads, total, vd], v.data)),
            .tensor(try QuantValues.tensor(dtype, shape: [batch, qHeads, s, total], scores)),
        ]
    }
}

/// The attention mask broadcast to [batch, heads, queries, keys]; keys past its last dimension are masked.
struct AttentionMask {
    private let values: [Float]
    private let strides: [Int]
    private let width: Int

    init(_ tensor: Tensor?, batch: Int, heads: Int, queries: Int, keys: Int) throws {
        guard let tensor else {
            values = []
            strides = [0, 0, 0, 0]
            width = keys
            return
        }
        guard tensor.rank >= 1, tensor.rank <= 4, let last = tensor.shape.last, last <= keys else {
            throw KilnError.shapeMismatch(
                "attn_mask of shape \(tensor.shape) does not fit [\(batch),\(heads),\(queries),\(keys)]")
        }
        let target = [batch, heads, queries, last]
        for (i, d) in tensor.shape.enumerated() {
            let t = target[4 - tensor.rank + i]
            guard d == t || d == 1 else {
                throw KilnError.shapeMismatch("attn_mask of shape \(tensor.shape) does not broadcast to \(target)")
            }
        }
        let raw = try QuantValues.floats(tensor)
        values = tensor.dtype == .bool ? raw.map { $0 != 0 ? 0 : -.infinity } : raw
        strides = Broadcast.strides(of: tensor.shape, broadcastTo: target)
        width = last
    }

    @inline(__always)
    func bias(_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Float {
        if j >= width { return -.infinity }
        if values.isEmpty { return 0 }
        return values[b * strides[0] + h * strides[1] + i * strides[2] + j * strides[3]]
    }
}

enum RotaryKernel {
    static func run(_ layer: RotaryEmbeddingLayer, _ inputs: [Value?]) throws -> Tensor {
        let xt = try inputs.tensor(0)
        let x = try QuantValues.floats(xt)
        let cos = try QuantValues.floats(inputs.tensor(1))
        let sin = try QuantValues.floats(inputs.tensor(2))
        let positions = try inputs.optionalTensor(3)?.intValues()
        let batch: Int
        let heads: Int
        let seq: Int
        let dim: Int
        if xt.rank == 4 {
            (batch, heads, seq, dim) = (xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3])
        } else if xt.rank == 3, layer.numHeads > 0, xt.shape[2] % layer.numHeads == 0 {
            (batch, seq, heads, dim) = (xt.shape[0], xt.shape[1], layer.numHeads, xt.shape[2] / layer.numHeads)
        } else {
            throw KilnError.shapeMismatch(
                "RotaryEmbedding input of shape \(xt.shape) needs rank 4, or rank 3 with num_heads")
        }
        let rotary = layer.rotaryDim == 0 ? dim : layer.rotaryDim
        guard rotary % 2 == 0, rotary <= dim else {
            throw KilnError.invalidArgument("rotary_embedding_dim \(rotary) must be even and at most \(dim)")
        }
        let half = rotary / 2
        let cacheRows = cos.count / max(half, 1)
        guard cos.count == sin.count, half == 0 || cos.count % half == 0 else {
            throw KilnError.shapeMismatch("cos/sin caches must have last dimension \(half)")
        }
        if let positions {
            guard positions.count == batch * seq else {
                throw KilnError.shapeMismatch("position_ids has \(positions.count) entries, \(batch * seq) expected")
            }
            if let bad = positions.first(where: { $0 < 0 || $0 >= cacheRows }) {
                throw KilnError.invalidArgument("position id \(bad) is outside the cache of \(cacheRows) rows")
            }
        } else if cacheRows != batch * seq {
            throw KilnError.shapeMismatch("without position_ids the caches must be [\(batch), \(seq), \(half)]")
        }
        var out = x
        for b in 0..<batch {
            for t in 0..<seq {
                let row = (positions?[b * seq + t] ?? (b * seq + t)) * half
                for h in 0..<heads {
                    let base = xt.rank == 4 ? ((b * heads + h) * seq + t) * dim : ((b * seq + t) * heads + h) * dim
                    for i in 0..<half {
                        let (i1, i2) =
                            layer.interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                        let c = cos[row + i]
                        let s = sin[row + i]
                        out[i1] = c * x[i1] - s * x[i2]
                        out[i2] = s * x[i1] + c * x[i2]
                    }
                }
            }
        }
        return try QuantValues.tensor(xt.dtype, shape: xt.shape, out)
    }
}
