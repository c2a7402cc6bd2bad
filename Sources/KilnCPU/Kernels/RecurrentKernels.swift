import Foundation
import KilnIR
import KilnRuntime

/// RNN, GRU and LSTM reference kernels (the recurrent layer) and, in their own files, the attention kernels.
/// Computes in Float; each (direction, batch row) runs its time steps independently.
enum RecurrentKernels {
    static let table: [(LayerKind, CPUKernelFactory)] =
        [
            cpuKernel(RecurrentLayer.self) { layer, inputs, context in
                try RecurrentKernel(layer: layer, inputs: inputs).run(threads: context.threads)
            }
        ] + AttentionKernels.table
}

extension RecurrentActivation {
    @inline(__always)
    func apply(_ x: Float) -> Float {
        switch kind {
        case .relu: return max(0, x)
        case .tanh: return tanhf(x)
        case .sigmoid: return 1 / (1 + expf(-x))
        case .affine: return alpha * x + beta
        case .leakyRelu: return x >= 0 ? x : alpha * x
        case .thresholdedRelu: return x > alpha ? x : 0
        case .scaledTanh: return alpha * tanhf(beta * x)
        case .hardSigmoid: return max(0, min(1, alpha * x + beta))
        case .elu: return x >= 0 ? x : alpha * (expf(x) - 1)
        case .softsign: return x / (1 + abs(x))
        case .softplus: return log1pf(expf(x))
        }
    }
}

private struct RecurrentKernel {
    let layer: RecurrentLayer
    let dtype: DType
    let seq: Int, batch: Int, inputSize: Int, hidden: Int, gates: Int, dirs: Int
    let x: [Float], w: [Float], r: [Float], bias: [Float]?, peep: [Float]?
    let lengths: [Int]
    let initialH: [Float]?, initialC: [Float]?

    init(layer: RecurrentLayer, inputs: [Value?]) throws {
        self.layer = layer
        let xt = try inputs.tensor(0)
        guard xt.rank == 3 else { throw KilnError.shapeMismatch("X must have rank 3, has shape \(xt.shape)") }
        dtype = xt.dtype
        seq = layer.batchFirst ? xt.shape[1] : xt.shape[0]
        batch = layer.batchFirst ? xt.shape[0] : xt.shape[1]
        inputSize = xt.shape[2]
        hidden = layer.hiddenSize
        gates = layer.cell.gates
        dirs = layer.direction.count
        let rows = gates * hidden
        func load(_ index: Int, _ shape: [Int], _ name: String) throws -> [Float]? {
            guard let t = try inputs.optionalTensor(index) else { return nil }
            guard t.shape == shape else {
                throw KilnError.shapeMismatch("\(name) has shape \(t.shape), expected \(shape)")
            }
            return try QuantValues.floats(t)
        }
        x = try QuantValues.floats(xt)
        guard let w = try load(1, [dirs, rows, inputSize], "W"), let r = try load(2, [dirs, rows, hidden], "R") else {
            throw KilnError.invalidArgument("W and R are required")
        }
        self.w = w
        self.r = r
        bias = try load(3, [dirs, 2 * rows], "B")
        let stateShape = layer.batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
        initialH = try load(5, stateShape, "initial_h")
        initialC = layer.cell == .lstm ? try load(6, stateShape, "initial_c") : nil
        peep = layer.cell == .lstm ? try load(7, [dirs, 3 * hidden], "P") : nil
        if let lens = try inputs.optionalTensor(4) {
            let values = try lens.intValues()
            let steps = seq
            guard values.count == batch, values.allSatisfy({ $0 >= 0 && $0 <= steps }) else {
                throw KilnError.invalidArgument("sequence_lens \(values) must have \(batch) entries in 0...\(seq)")
            }
            lengths = values
        } else {
            lengths = Array(repeating: seq, count: batch)
        }
        guard layer.activations.count == layer.cell.activationCount * dirs else {
            throw KilnError.invalidModel("\(layer.activations.count) activations for \(dirs) direction(s)")
        }
    }

    /// Index of state element (d, b, j) in the layout's state shape.
    func stateIndex(_ d: Int, _ b: Int, _ j: Int) -> Int {
        layer.batchFirst ? (b * dirs + d) * hidden + j : (d * batch + b) * hidden + j
    }

    func run(threads: Int) throws -> [Value] {
        var y = [Float](repeating: 0, count: seq * dirs * batch * hidden)
        var yh = [Float](repeating: 0, count: dirs * batch * hidden)
        var yc = [Float](repeating: 0, count: dirs * batch * hidden)
        for d in 0..<dirs {
            for b in 0..<batch { runRow(d, b, &y, &yh, &yc) }
        }
        let stateShape = layer.batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
        let yShape = layer.batchFirst ? [batch, seq, dirs, hidden] : [seq, dirs, batch, hidden]
        var outputs: [Value] = [
            .tensor(try QuantValues.tensor(dtype, shape: yShape, y)),
            .tensor(try QuantValues.tensor(dtype, shape: stateShape, yh)),
        ]
        if layer.cell == .lstm { outputs.append(.tensor(try QuantValues.tensor(dtype, shape: stateShape, yc))) }
        return outputs
    }

    private func clip(_ v: Float) -> Float {
        guard let c = layer.clip else { return v }
        return min(max(v, -c), c)
    }

    private func runRow(_ d: Int, _ b: Int, _ y: inout [Float], _ yh: inout [Float], _ yc: inout [Float]) {
        let rows = gates * hidden
        let reverse = layer.direction == .reverse || d == 1
        let acts = Array(layer.activations[(d * layer.cell.activationCount)...])
        var h = (0..<hidden).map { initialH?[stateIndex(d, b, $0)] ?? 0 }
        var c = (0..<hidden).map { initialC?[stateIndex(d, b, $0)] ?? 0 }
        var xw = [Float](repeating: 0, count: rows)
        var hr = [Float](repeating: 0, count: rows)
        var scratch = [Float](repeating: 0, count: hidden)
        var candidate = [Float](repeating: 0, count: hidden)
        let wBase = d * rows * inputSize
        let rBase = d * rows * hidden
        let len = lengths[b]
        for step in 0..<len {
            let t = reverse ? len - 1 - step : step
            let xBase = layer.batchFirst ? (b * seq + t) * inputSize : (t * batch + b) * inputSize
            for row in 0..<rows {
                var s: Float = bias.map { $0[d * 2 * rows + row] } ?? 0
                for i in 0..<inputSize { s += x[xBase + i] * w[wBase + row * inputSize + i] }
                xw[row] = s
                var q: Float = bias.map { $0[d * 2 * rows + rows + row] } ?? 0
                for j in 0..<hidden { q += h[j] * r[rBase + row * hidden + j] }
                hr[row] = q
            }
            switch layer.cell {
            case .rnn:
                for j in 0..<hidden { h[j] = acts[0].apply(clip(xw[j] + hr[j])) }
            case .gru:
                for j in 0..<hidden { scratch[j] = acts[0].apply(clip(xw[hidden + j] + hr[hidden + j])) }  // r
                for j in 0..<hidden {
                    let recurrent: Float
                    if layer.linearBeforeReset {
                        recurrent = scratch[j] * hr[2 * hidden + j]
                    } else {
                        var q: Float = bias.map { $0[d * 2 * rows + rows + 2 * hidden + j] } ?? 0
                        for k in 0..<hidden { q += scratch[k] * h[k] * r[rBase + (2 * hidden + j) * hidden + k] }
                        recurrent = q
                    }
                    candidate[j] = acts[1].apply(clip(xw[2 * hidden + j] + recurrent))
                }
                for j in 0..<hidden {
                    let z = acts[0].apply(clip(xw[j] + hr[j]))
                    h[j] = (1 - z) * candidate[j] + z * h[j]
                }
            case .lstm:
                for j in 0..<hidden {
                    let pi = peep.map { $0[d * 3 * hidden + j] } ?? 0
                    let po = peep.map { $0[d * 3 * hidden + hidden + j] } ?? 0
                    let pf = peep.map { $0[d * 3 * hidden + 2 * hidden + j] } ?? 0
                    let i = acts[0].apply(clip(xw[j] + hr[j] + pi * c[j]))
                    var f = acts[0].apply(clip(xw[2 * hidden + j] + hr[2 * hidden + j] + pf * c[j]))
                    if layer.inputForget { f = 1 - i }
                    let g = acts[1].apply(clip(xw[3 * hidden + j] + hr[3 * hidden + j]))
                    c[j] = f * c[j] + i * g
                    let o = acts[0].apply(clip(xw[hidden + j] + hr[hidden + j] + po * c[j]))
                    scratch[j] = o * acts[2].apply(c[j])
                }
                h = scratch
            }
            for j in 0..<hidden {
                let index =
                    layer.batchFirst
                    ? ((b * seq + t) * dirs + d) * hidden + j : ((t * dirs + d) * batch + b) * hidden + j
                y[index] = h[j]
            }
        }
        for j in 0..<hidden {
            yh[stateIndex(d, b, j)] = h[j]
            yc[stateIndex(d, b, j)] = c[j]
        }
    }
}
