import Foundation
import KilnIR
import KilnRuntime

/// Some outputs of a convolution step computed on the host in double precision, directly from the definition,
/// from the operands a tactic timer uploaded: the reference every timed cuDNN algorithm must reproduce.
struct SampledConvolution {
    let step: CUDAConvolution
    /// Output coordinates [n, o, spatial...]: the first and the last output, then seeded random ones.
    let entries: [[Int]]

    init(_ step: CUDAConvolution, count: Int = 64, seed: UInt64 = 7) {
        self.step = step
        var generator = SeededGenerator(seed: seed)
        let shape = step.outputShape
        var entries = [shape.map { _ in 0 }, shape.map { $0 - 1 }]
        while entries.count < count {
            entries.append(shape.map { min(Int(generator.unit() * Double($0)), $0 - 1) })
        }
        self.entries = entries
    }

    /// The terms each output sums: input channels per group times the kernel's positions.
    var terms: Int { step.weightShape.dropFirst().reduce(1, *) }

    /// The storage offset of logical [n, c, spatial...] coordinates in a tensor of logical `shape`: NCHW, or NHWC
    /// with `channelsLast`.
    func offset(_ index: [Int], _ shape: [Int]) -> Int {
        let order = step.channelsLast ? [0] + Array(2..<shape.count) + [1] : Array(0..<shape.count)
        return order.reduce(0) { $0 * shape[$1] + index[$1] }
    }

    /// `relu?(conv(x, w) + bias[o] + residual)` at each entry; with `tf32`, x and w are first rounded to TF32.
    func reference(x: [Float], w: [Float], bias: [Float]?, residual: [Float]?, tf32: Bool) -> [Double] {
        let (xs, ws) = (step.inputShape, step.weightShape)
        let spatial = xs.count - 2
        let perGroup = ws[1]
        let outputsPerGroup = ws[0] / step.groups
        let kernel = Array(ws.dropFirst(2))
        let positions = kernel.reduce(1, *)
        func operand(_ v: Float) -> Double { Double(tf32 ? SampledProduct.tf32(v) : v) }
        return entries.map { e in
            let (n, o) = (e[0], e[1])
            let group = o / outputsPerGroup
            var sum = 0.0
            for ci in 0..<perGroup {
                for p in 0..<positions {
                    var k = [Int](repeating: 0, count: spatial)
                    var rest = p
                    for axis in (0..<spatial).reversed() {
                        k[axis] = rest % kernel[axis]
                        rest /= kernel[axis]
                    }
                    var input = [n, group * perGroup + ci]
                    var inside = true
                    for axis in 0..<spatial {
                        let at = e[2 + axis] * step.strides[axis] - step.pads[axis] + k[axis] * step.dilations[axis]
                        inside = inside && at >= 0 && at < xs[2 + axis]
                        input.append(at)
                    }
                    guard inside else { continue }
                    sum += operand(x[offset(input, xs)]) * operand(w[offset([o, ci] + k, ws)])
                }
            }
            if let bias { sum += Double(bias[o]) }
            if let residual { sum += Double(residual[offset(e, step.outputShape)]) }
            return step.activation == .relu ? max(sum, 0) : sum
        }
    }

    /// Where output [n, o, spatial...] is stored: densely, or at the step's output strides.
    func outputOffset(_ index: [Int]) -> Int {
        guard let strides = step.outputStrides else { return offset(index, step.outputShape) }
        return zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// The elements Y spans as stored (its last output's offset plus one).
    var storedCount: Int {
        step.outputShape.contains(0) ? 0 : outputOffset(step.outputShape.map { $0 - 1 }) + 1
    }

    /// ‖sampled outputs of `y` − `expected`‖ / ‖`expected`‖ (infinite for a non-finite output).
    func relativeError(of y: [Float], from expected: [Double]) -> Double {
        sampledRelativeError(entries.map { Double(y[outputOffset($0)]) }, expected)
    }
}
