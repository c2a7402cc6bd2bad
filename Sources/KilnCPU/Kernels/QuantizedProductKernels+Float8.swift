import KilnIR
import KilnRuntime

/// float8e4m3fn products on the CPU (`input.type` float8e4m3fn, explicitly quantized FP8 models): the input is
/// rounded to E4M3 numbers (`x / scale`, saturating, ties to even), the weights are widened to float32 once per
/// weight tensor, and the float32 convolution or matMul kernel sums their products, which float32 holds
/// exactly; the float tail (`sum * inputScale * weightScale`, bias, residual, activation, the output round
/// trip) is the int8 kernels' `Finish`. The products run at float32 speed: a reference for the GPU kernels and
/// a working CPU path, not a fast one.
final class Float8Products: @unchecked Sendable {
    private let widened = WeightCache<Tensor>()
    /// The float32 kernel over the E4M3 numbers (no bias or epilogue: the finish adds them after the scale).
    private let product: any Kernel

    init(convolution parameters: ConvolutionParameters, tuner: GemmTuner) {
        product = ConvolutionKernel(ConvolutionLayer(parameters), tuner: tuner)
    }

    init(matMulTuner tuner: GemmTuner) {
        product = MatMulKernel(MatMulLayer(transposeB: true, beta: 0), tuner: tuner)
    }

    /// `x / scale` rounded to E4M3 numbers, as float32 and not scaled back.
    static func numbers(_ x: Tensor, _ q: ActivationQuantization) -> Tensor {
        Tensor.build(Float.self, shape: x.shape) { out in
            x.withUnsafeBuffer(as: Float.self) { v in
                for i in 0..<v.count { out[i] = ActivationQuantization.e4m3(v[i] / q.scale) }
            }
        }
    }

    /// E4M3 bytes as the float32 numbers they stand for.
    static func decoded(_ t: Tensor) -> Tensor {
        let format = ActivationQuantization.float8
        return Tensor.build(Float.self, shape: t.shape) { out in
            t.withUnsafeBuffer(as: UInt8.self) { b in
                for i in 0..<b.count { out[i] = Float(format.decode(b[i])) }
            }
        }
    }

    /// The unscaled sums `Σ e4m3(x / scale) * w` in the float kernel's output layout: `[N, M, spatial...]` for a
    /// convolution, `[..., N]` for a matMul (weights `[N, K]`).
    func sums(_ x: Tensor, _ w: Tensor, _ q: ActivationQuantization, _ context: KernelContext) throws -> Tensor {
        guard x.dtype == .float32, w.dtype == .float8e4m3fn else {
            throw KilnError.invalidArgument(
                "a float8 product needs float32 input and float8e4m3fn weights, got \(x.dtype) and \(w.dtype)")
        }
        let weights = widened.value(for: w) { Self.decoded(w) }
        let outputs = try product.execute([.tensor(Self.numbers(x, q)), .tensor(weights)], context)
        guard case .tensor(let sums)? = outputs.first else {
            throw KilnError.runtime("the float product behind a float8 layer returned no tensor")
        }
        return sums
    }

    /// `sums` finished row by row: row `r` (of `count` values) takes the scale and bias of channel
    /// `r % scales.count` (a convolution's output channels) and the matching row of `residual`; `perColumn`
    /// gives each value of a row its own channel instead (a matMul's columns).
    static func finish(
        _ sums: Tensor, rows: Int, count: Int, perColumn: Bool, scales: [Float], bias: [Float]?,
        residual: Tensor?, _ finish: Int8Arithmetic.Finish, threads: Int
    ) -> Tensor {
        let channels = scales.count
        return Tensor.build(Float.self, shape: sums.shape) { out in
            guard let o = out.baseAddress, out.count > 0 else { return }
            let shared = UncheckedSendable(o)
            let residualBase = Int8Arithmetic.pointer(to: residual)
            sums.withUnsafeBuffer(as: Float.self) { s in
                let source = UncheckedSendable(s.baseAddress!)
                Parallel.forEach(rows, threads: threads) { range in
                    for r in range {
                        let channel = perColumn ? 0 : r % channels
                        let first = source.value + r * count
                        finish.row(
                            shared.value + r * count, count: count, sum: { first[$0] },
                            scale: { perColumn ? scales[$0] : scales[channel] },
                            bias: { perColumn ? bias?[$0] ?? 0 : bias?[channel] ?? 0 },
                            residual: residualBase.map { $0 + r * count })
                    }
                }
            }
        }
    }
}
