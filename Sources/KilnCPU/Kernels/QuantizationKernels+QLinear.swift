import KilnIR
import KilnRuntime

/// QLinearMatMul and QLinearConv: integer accumulation on zero-point-shifted inputs, then requantization
/// with `aScale * bScale / yScale` computed in the scales' type.
enum QLinearKernels {
    /// Values of a small parameter tensor broadcast per row/column: one element, or `count` elements.
    private static func perIndex(_ tensor: Tensor?, count: Int, _ what: String) throws -> [Float]? {
        guard let tensor else { return nil }
        let values = try QuantValues.floats(tensor)
        guard values.count == 1 || values.count == count else {
            throw KilnError.shapeMismatch("\(what) has \(values.count) elements; 1 or \(count) expected")
        }
        return values
    }

    @inline(__always)
    private static func at(_ values: [Float]?, _ i: Int) -> Float {
        guard let values else { return 0 }
        return values.count == 1 ? values[0] : values[i]
    }

    static func matMul(_ inputs: [Value?]) throws -> Tensor {
        let a = try inputs.tensor(0)
        let b = try inputs.tensor(3)
        guard a.rank >= 2, b.rank >= 2 else {
            throw KilnError.unsupported("QLinearMatMul needs inputs of rank 2 or more")
        }
        let m = a.shape[a.rank - 2]
        let k = a.shape[a.rank - 1]
        let n = b.shape[b.rank - 1]
        guard b.shape[b.rank - 2] == k else {
            throw KilnError.shapeMismatch("QLinearMatMul shapes \(a.shape) and \(b.shape) do not multiply")
        }
        let aScaleTensor = try inputs.tensor(1)
        let scaleType = aScaleTensor.dtype
        let aScale = try perIndex(aScaleTensor, count: m, "a_scale")
        let aZero = try perIndex(inputs.optionalTensor(2), count: m, "a_zero_point")
        let bScale = try perIndex(inputs.tensor(4), count: n, "b_scale")
        let bZero = try perIndex(inputs.optionalTensor(5), count: n, "b_zero_point")
        let yScale = try perIndex(inputs.tensor(6), count: 1, "y_scale")
        let yZeroTensor = try inputs.optionalTensor(7)
        let yZero = try perIndex(yZeroTensor, count: 1, "y_zero_point")
        let outType = yZeroTensor?.dtype ?? a.dtype
        guard let (low, high) = QuantValues.integerRange(outType) else {
            throw KilnError.unsupported("QLinearMatMul output type \(outType.onnxName)")
        }
        let batchA = Array(a.shape.dropLast(2))
        let batchB = Array(b.shape.dropLast(2))
        let batch = try Broadcast.shape(batchA, batchB)
        let stridesA = Broadcast.strides(of: batchA, broadcastTo: batch)
        let stridesB = Broadcast.strides(of: batchB, broadcastTo: batch)
        let av = try QuantValues.floats(a)
        let bv = try QuantValues.floats(b)
        let batchCount = batch.reduce(1, *)
        var out = [Int](repeating: 0, count: batchCount * m * n)
        var factors = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                let s = QuantValues.narrowed(at(aScale, i) * at(bScale, j), scaleType)
                factors[i * n + j] = Double(QuantValues.narrowed(s / at(yScale, 0), scaleType))
            }
        }
        let batchStrides = Broadcast.strides(batch)
        for p in 0..<batchCount {
            var offA = 0
            var offB = 0
            for d in 0..<batch.count {
                let c = (p / batchStrides[d]) % batch[d]
                offA += c * stridesA[d]
                offB += c * stridesB[d]
            }
            let baseA = offA * m * k
            let baseB = offB * k * n
            for i in 0..<m {
                let za = at(aZero, i)
                for j in 0..<n {
                    let zb = at(bZero, j)
                    var acc: Int64 = 0
                    for t in 0..<k {
                        acc += Int64(av[baseA + i * k + t] - za) * Int64(bv[baseB + t * n + j] - zb)
                    }
                    let r = (Double(acc) * factors[i * n + j] + Double(at(yZero, 0))).rounded(.toNearestOrEven)
                    out[(p * m + i) * n + j] = Int(min(max(r, Double(low)), Double(high)))
                }
            }
        }
        return QuantValues.integerTensor(outType, shape: batch + [m, n], out)
    }

    static func conv(_ layer: QLinearConvLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(3)
        let geometry = try QLinearConvGeometry(layer: layer, input: x.shape, weight: w.shape)
        let outShape = geometry.outputShape
        let batch = x.shape[0]
        let outChannels = w.shape[0]
        let groupIn = w.shape[1]
        let perGroupOut = outChannels / layer.group
        let spatial = x.rank - 2
        let xScale = try perIndex(inputs.tensor(1), count: 1, "x_scale")
        let xZero = at(try perIndex(inputs.optionalTensor(2), count: 1, "x_zero_point"), 0)
        let wScale = try perIndex(inputs.tensor(4), count: outChannels, "w_scale")
        let wZero = try perIndex(inputs.optionalTensor(5), count: outChannels, "w_zero_point")
        let yScale = try perIndex(inputs.tensor(6), count: 1, "y_scale")
        let yZeroTensor = try inputs.optionalTensor(7)
        let yZero = at(try perIndex(yZeroTensor, count: 1, "y_zero_point"), 0)
        let bias = try inputs.optionalTensor(8).map { try QuantValues.floats($0) }
        if let bias, bias.count != outChannels {
            throw KilnError.shapeMismatch("bias has \(bias.count) elements for \(outChannels) output channels")
        }
        let outType = yZeroTensor?.dtype ?? x.dtype
        guard let (low, high) = QuantValues.integerRange(outType) else {
            throw KilnError.unsupported("QLinearConv output type \(outType.onnxName)")
        }
        let xv = try QuantValues.floats(x)
        let wv = try QuantValues.floats(w)
        let inSpatial = Array(x.shape[2...])
        let kernel = Array(w.shape[2...])
        let outSpatial = Array(outShape[2...])
        let kernelCount = kernel.reduce(1, *)
        let outCount = outSpatial.reduce(1, *)
        let inCount = inSpatial.reduce(1, *)
        let kernelCoords = (0..<kernelCount).map { unflatten($0, kernel) }
        let inStrides = Broadcast.strides(inSpatial)
        var out = [Int](repeating: 0, count: batch * outChannels * outCount)
        out.withUnsafeMutableBufferPointer { buffer in
            let target = UncheckedSendable(buffer)
            Parallel.forEach(batch * outChannels, threads: threads) { range in
                var position = [Int](repeating: 0, count: spatial)
                for job in range {
                    let nIndex = job / outChannels
                    let oc = job % outChannels
                    let g = oc / perGroupOut
                    let zw = at(wZero, oc)
                    let factor = Double(at(xScale, 0) * at(wScale, oc) / at(yScale, 0))
                    for o in 0..<outCount {
                        var rem = o
                        for d in stride(from: spatial - 1, through: 0, by: -1) {
                            position[d] = (rem % outSpatial[d]) * geometry.strides[d] - geometry.padsBegin[d]
                            rem /= outSpatial[d]
                        }
                        var acc: Int64 = bias.map { Int64($0[oc]) } ?? 0
                        for kp in 0..<kernelCount {
                            var offset = 0
                            var inside = true
                            for d in 0..<spatial {
                                let c = position[d] + kernelCoords[kp][d] * geometry.dilations[d]
                                if c < 0 || c >= inSpatial[d] {
                                    inside = false
                                    break
                                }
                                offset += c * inStrides[d]
                            }
                            if !inside { continue }
                            for c in 0..<groupIn {
                                let xi = (nIndex * x.shape[1] + g * groupIn + c) * inCount + offset
                                let wi = (oc * groupIn + c) * kernelCount + kp
                                acc += Int64(xv[xi] - xZero) * Int64(wv[wi] - zw)
                            }
                        }
                        let r = (Double(acc) * factor + Double(yZero)).rounded(.toNearestOrEven)
                        target.value[job * outCount + o] = Int(min(max(r, Double(low)), Double(high)))
                    }
                }
            }
        }
        return QuantValues.integerTensor(outType, shape: outShape, out)
    }

    private static func unflatten(_ index: Int, _ shape: [Int]) -> [Int] {
        var coords = [Int](repeating: 0, count: shape.count)
        var rem = index
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            coords[d] = rem % shape[d]
            rem /= shape[d]
        }
        return coords
    }
}
