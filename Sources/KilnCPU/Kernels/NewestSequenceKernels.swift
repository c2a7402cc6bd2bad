import Foundation
import KilnIR
import KilnRuntime

/// causalConvWithState and linearAttention. Both read their floating inputs into Double, compute there, and
/// round once into the output type (float16/bfloat16 included).
extension NewestKernels {
    // MARK: Double staging

    struct DoubleReader: ScalarVisitor {
        let tensor: Tensor
        func visit<T: TensorScalar>(_ type: T.Type) throws -> [Double] {
            tensor.withUnsafeBuffer(as: T.self) { buffer in buffer.map { $0.doubleValue } }
        }
    }

    struct DoubleWriter: ScalarVisitor {
        let values: [Double]
        let shape: [Int]
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            Tensor.build(T.self, shape: shape) { out in
                for i in 0..<min(out.count, values.count) { out[i] = T(castingFrom: values[i]) }
            }
        }
    }

    static func doubles(_ t: Tensor, _ what: String) throws -> [Double] {
        guard t.dtype.isFloatingPoint, t.dtype.scalarType != nil else {
            throw KilnError.unsupported("\(what) of element type \(t.dtype)")
        }
        return try t.dtype.visit(DoubleReader(tensor: t))
    }

    static func tensor(_ values: [Double], _ dtype: DType, _ shape: [Int]) throws -> Tensor {
        try dtype.visit(DoubleWriter(values: values, shape: shape))
    }

    // MARK: CausalConvWithState

    static func causalConv(
        _ layer: CausalConvWithStateLayer, x: Tensor, weight: Tensor, bias: Tensor?, past: Tensor?, threads: Int
    ) throws -> (Tensor, Tensor) {
        guard x.rank == 3, weight.rank == 3 else {
            throw KilnError.shapeMismatch("causalConvWithState needs rank-3 input and weight, has \(x.shape), \(weight.shape)")
        }
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let k = weight.shape[2]
        guard weight.shape[0] == channels, weight.shape[1] == 1, k >= 1 else {
            throw KilnError.shapeMismatch("causalConvWithState weight \(weight.shape) for \(channels) channels")
        }
        let carry = k - 1
        if let bias, bias.shape != [channels] {
            throw KilnError.shapeMismatch("causalConvWithState bias \(bias.shape) for \(channels) channels")
        }
        if let past, past.shape != [batch, channels, carry] {
            throw KilnError.shapeMismatch("causalConvWithState past_state \(past.shape), want \([batch, channels, carry])")
        }
        let xs = try doubles(x, "causalConvWithState")
        let ws = try doubles(weight, "causalConvWithState")
        let bs = try bias.map { try doubles($0, "causalConvWithState") }
        let ps = try past.map { try doubles($0, "causalConvWithState") }
        let padded = length + carry
        var y = [Double](repeating: 0, count: batch * channels * length)
        var state = [Double](repeating: 0, count: batch * channels * carry)
        let silu = layer.activation == .silu
        y.withUnsafeMutableBufferPointer { yb in
            state.withUnsafeMutableBufferPointer { sb in
                let yOut = UncheckedSendable(yb)
                let sOut = UncheckedSendable(sb)
                Parallel.forEach(batch * channels, threads: threads, minimumChunk: 16) { range in
                    var line = [Double](repeating: 0, count: padded)
                    for bc in range {
                        let c = bc % channels
                        for j in 0..<carry { line[j] = ps?[bc * carry + j] ?? 0 }
                        for t in 0..<length { line[carry + t] = xs[bc * length + t] }
                        for t in 0..<length {
                            var acc = bs?[c] ?? 0
                            for j in 0..<k { acc += ws[c * k + j] * line[t + j] }
                            if silu { acc = acc / (1 + Foundation.exp(-acc)) }
                            yOut.value[bc * length + t] = acc
                        }
                        for j in 0..<carry { sOut.value[bc * carry + j] = line[length + j] }
                    }
                }
            }
        }
        return (try tensor(y, x.dtype, x.shape), try tensor(state, x.dtype, [batch, channels, carry]))
    }
}
