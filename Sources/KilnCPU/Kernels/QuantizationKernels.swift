import KilnIR
import KilnRuntime

/// Kernels for quantize/dequantize and the quantized linear layers. Reference implementations that compute
/// in Float (Double for requantization), as the ONNX reference does.
enum QuantizationKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(QuantizeLayer.self) { layer, inputs, _ in [.tensor(try quantize(layer, inputs))] },
        cpuKernel(DequantizeLayer.self) { layer, inputs, _ in [.tensor(try dequantize(layer, inputs))] },
        cpuKernel(DynamicQuantizeLayer.self) { _, inputs, _ in try dynamicQuantize(inputs.tensor(0)).map { .tensor($0) }
        },
        cpuKernel(QLinearMatMulLayer.self) { _, inputs, _ in [.tensor(try QLinearKernels.matMul(inputs))] },
        cpuKernel(QLinearConvLayer.self) { layer, inputs, context in
            [.tensor(try QLinearKernels.conv(layer, inputs, threads: context.threads))]
        },
    ]

    static func quantize(_ layer: QuantizeLayer, _ inputs: [Value?]) throws -> Tensor {
        let x = try inputs.tensor(0)
        let scaleTensor = try inputs.tensor(1)
        let zeroTensor = try inputs.optionalTensor(2)
        let outType = zeroTensor?.dtype ?? layer.outputType
        let values = try QuantValues.floats(x)
        let scales = try QuantValues.floats(scaleTensor)
        let index = try QuantParamIndex(x.shape, scaleTensor.shape, axis: layer.axis, blockSize: layer.blockSize)
        var zeros: [Float] = []
        if let zeroTensor {
            guard zeroTensor.count == scaleTensor.count else {
                throw KilnError.shapeMismatch(
                    "zero point shape \(zeroTensor.shape) differs from scale \(scaleTensor.shape)")
            }
            zeros = try QuantValues.floats(zeroTensor)
        }
        // The division happens in the input's type (float16 inputs give float16 quotients) unless a
        // precision is given.
        let arithmetic = layer.precision ?? x.dtype
        var quotients = [Float](repeating: 0, count: values.count)
        for i in 0..<values.count {
            let s = index.index(i)
            quotients[i] = QuantValues.narrowed(values[i] / scales[s], arithmetic)
        }
        if let (low, high) = QuantValues.integerRange(outType) {
            var out = [Int](repeating: 0, count: values.count)
            for i in 0..<values.count {
                var q = Double(quotients[i]).rounded(.toNearestOrEven)
                if !zeros.isEmpty { q += Double(zeros[index.index(i)]) }
                out[i] = q.isNaN ? 0 : Int(min(max(q, Double(low)), Double(high)))
            }
            return QuantValues.integerTensor(outType, shape: x.shape, out)
        }
        guard QuantValues.isMiniFloat(outType) else {
            throw KilnError.unsupported("QuantizeLinear to \(outType.onnxName) is not supported")
        }
        if outType == .float4e2m1 && !zeros.isEmpty {
            for i in 0..<quotients.count { quotients[i] += zeros[index.index(i)] }
        }
        return try QuantValues.tensor(outType, shape: x.shape, quotients, saturate: layer.saturate)
    }

    static func dequantize(_ layer: DequantizeLayer, _ inputs: [Value?]) throws -> Tensor {
        let x = try inputs.tensor(0)
        let scaleTensor = try inputs.tensor(1)
        let zeroTensor = try inputs.optionalTensor(2)
        let outType = layer.outputType ?? scaleTensor.dtype
        let values = try QuantValues.floats(x)
        let scales = try QuantValues.floats(scaleTensor)
        let index = try QuantParamIndex(x.shape, scaleTensor.shape, axis: layer.axis, blockSize: layer.blockSize)
        // Float8 zero points must be zero and are ignored, as in the reference.
        var zeros: [Float] = []
        if let zeroTensor, !QuantValues.isMiniFloat(x.dtype) || x.dtype == .float4e2m1 {
            guard zeroTensor.count == scaleTensor.count else {
                throw KilnError.shapeMismatch(
                    "zero point shape \(zeroTensor.shape) differs from scale \(scaleTensor.shape)")
            }
            zeros = try QuantValues.floats(zeroTensor)
        }
        var out = [Float](repeating: 0, count: values.count)
        for i in 0..<values.count {
            let s = index.index(i)
            out[i] = (zeros.isEmpty ? values[i] : values[i] - zeros[s]) * scales[s]
        }
        return try QuantValues.tensor(outType, shape: x.shape, out)
    }

    static func dynamicQuantize(_ x: Tensor) throws -> [Tensor] {
        let values = try QuantValues.floats(x)
        let maxValue = max(0, values.max() ?? 0)
        let minValue = min(0, values.min() ?? 0)
        let scale = (maxValue == minValue ? 1 : maxValue - minValue) / 255
        var zero = (min(255, max(0, 0 - minValue / scale))).rounded(.toNearestOrEven)
        if !zero.isFinite { zero = 0 }  // NaN inputs: keep the conversion below in range
        let q = values.map { v -> UInt8 in
            let r = (v / scale).rounded(.toNearestOrEven) + zero
            return r.isNaN ? 0 : UInt8(min(255, max(0, r)))
        }
        return [
            Tensor(shape: x.shape, scalars: q), try QuantValues.tensor(x.dtype, shape: [], [scale]),
            Tensor(scalar: UInt8(zero)),
        ]
    }
}

/// Maps an element index of the data tensor to the index of its scale / zero point.
struct QuantParamIndex {
    private enum Mode { case tensor, axis, blocked }
    private let mode: Mode
    private let dim: Int
    private let inner: Int
    private let block: Int
    private let blocks: Int

    init(_ shape: [Int], _ param: [Int], axis rawAxis: Int, blockSize: Int) throws {
        let count = Tensor.elementCount(param)
        if count == 1 && (param.count <= 1 || blockSize == 0) {
            mode = .tensor
            dim = 1
            inner = 1
            block = 1
            blocks = 1
            return
        }
        let axis = try TensorSlicing.axis(rawAxis, rank: shape.count)
        dim = shape[axis]
        inner = shape[(axis + 1)...].reduce(1, *)
        if blockSize <= 0 {
            guard param.count == 1, param[0] == dim else {
                throw KilnError.shapeMismatch(
                    "per-axis scale of shape \(param) does not match axis \(axis) of \(shape)")
            }
            mode = .axis
            block = 1
            blocks = dim
        } else {
            let expected = (dim + blockSize - 1) / blockSize
            guard param.count == shape.count,
                param.indices.allSatisfy({ $0 == axis ? param[$0] == expected : param[$0] == shape[$0] })
            else {
                throw KilnError.shapeMismatch(
                    "blocked scale of shape \(param) does not match \(shape) "
                        + "with block size \(blockSize) on axis \(axis)")
            }
            mode = .blocked
            block = blockSize
            blocks = expected
        }
    }

    @inline(__always)
    func index(_ i: Int) -> Int {
        switch mode {
        case .tensor: return 0
        case .axis: return (i / inner) % dim
        case .blocked:
            let n = i % inner
            let d = (i / inner) % dim
            let o = i / (inner * dim)
            return (o * blocks + d / block) * inner + n
        }
    }
}
