import Foundation
import KilnIR

/// CausalConvWithState, computed in double: per (batch, channel) row the sequence is the
/// past state followed by the input, and y[t] = act(bias + sum_k w[k] * seq[t + k]).
enum CausalConvolution {
    static func run(_ layer: CausalConvolutionLayer, _ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let b = try inputs.optionalTensor(2)
        let past = try inputs.optionalTensor(3)
        try LinearAlgebraSupport.requireSameType([x, w] + [b, past].compactMap { $0 }, "causal convolution")
        guard x.dtype.isFloatingPoint else { throw KilnError.unsupported("causal convolution of \(x.dtype.onnxName)") }
        guard x.rank == 3, w.rank == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1 else {
            throw KilnError.shapeMismatch(
                "causal convolution needs X [N, C, L] and W [C, 1, K], got \(x.shape), \(w.shape)")
        }
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let k = w.shape[2]
        let stateLength = k - 1
        if let b, b.shape != [channels] {
            throw KilnError.shapeMismatch("bias shape \(b.shape), [\(channels)] expected")
        }
        if let past, past.shape != [batch, channels, stateLength] {
            throw KilnError.shapeMismatch(
                "past_state shape \(past.shape), [\(batch), \(channels), \(stateLength)] expected")
        }
        let xv = try x.doubleValues()
        let wv = try w.doubleValues()
        let bv = try b?.doubleValues()
        let pv = try past?.doubleValues()
        var y = [Double](repeating: 0, count: batch * channels * length)
        var state = [Double](repeating: 0, count: batch * channels * stateLength)
        var seq = [Double](repeating: 0, count: stateLength + length)
        for row in 0..<(batch * channels) {
            let c = row % channels
            for i in 0..<stateLength { seq[i] = pv?[row * stateLength + i] ?? 0 }
            for t in 0..<length { seq[stateLength + t] = xv[row * length + t] }
            for t in 0..<length {
                var acc = bv?[c] ?? 0
                for j in 0..<k { acc += wv[c * k + j] * seq[t + j] }
                if layer.activation == .silu { acc /= 1 + exp(-acc) }
                y[row * length + t] = acc
            }
            for i in 0..<stateLength { state[row * stateLength + i] = seq[length + i] }
        }
        return [
            .tensor(try Tensor.fromDoubles(y, shape: x.shape, dtype: x.dtype)),
            .tensor(try Tensor.fromDoubles(state, shape: [batch, channels, stateLength], dtype: x.dtype)),
        ]
    }
}
