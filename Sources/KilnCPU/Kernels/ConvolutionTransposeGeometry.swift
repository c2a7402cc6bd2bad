import KilnIR

/// The checked shapes of one transposed convolution, shared by the SGEMM kernel and the reference loop.
struct DeconvolutionGeometry {
    let batch: Int
    let inChannels: Int
    let outChannels: Int
    /// Output channels per group.
    let mg: Int
    /// Input channels per group.
    let cg: Int
    let inSpatial: [Int]
    let resolved: ConvolutionParameters.Resolved

    init(_ layer: DeconvolutionLayer, x: Tensor, w: Tensor, b: Tensor?) throws {
        try LinearAlgebraSupport.requireSameType([x, w] + (b.map { [$0] } ?? []), "deconvolution")
        guard x.rank >= 3, w.rank == x.rank else {
            throw KilnError.shapeMismatch(
                "deconvolution needs X [N, C, ...] and W of the same rank, got \(x.shape), \(w.shape)")
        }
        let group = layer.parameters.group
        (batch, inChannels) = (x.shape[0], x.shape[1])
        guard group > 0, w.shape[0] == inChannels, inChannels % group == 0 else {
            throw KilnError.shapeMismatch(
                "deconvolution with group \(group): X \(x.shape) and W \(w.shape) do not match")
        }
        mg = w.shape[1]
        outChannels = mg * group
        cg = inChannels / group
        inSpatial = Array(x.shape.dropFirst(2))
        let weightKernel = Array(w.shape.dropFirst(2))
        resolved = try layer.resolve(input: inSpatial, kernel: weightKernel)
        guard resolved.kernel == weightKernel else {
            throw KilnError.shapeMismatch("kernel_shape \(resolved.kernel) does not match the weights \(weightKernel)")
        }
        if let b, b.count != outChannels {
            throw KilnError.shapeMismatch("deconvolution bias has \(b.count) elements, \(outChannels) expected")
        }
    }

    /// For each (kernel position, input position), at index `kp * inputSize + ip`: the output offset within one
    /// channel plane, or -1 when it falls in the padding.
    func targets() -> [Int] {
        let r = resolved
        let inPositions = ConvolutionReference.indices(inSpatial)
        let kernelPositions = ConvolutionReference.indices(r.kernel)
        let outStrides = Broadcast.strides(r.output)
        var targets = [Int](repeating: -1, count: kernelPositions.count * inPositions.count)
        for (kp, kernel) in kernelPositions.enumerated() {
            for (ip, position) in inPositions.enumerated() {
                var offset = 0
                var inside = true
                for a in 0..<position.count {
                    let o = position[a] * r.strides[a] - r.padsBegin[a] + kernel[a] * r.dilations[a]
                    if o < 0 || o >= r.output[a] { inside = false }
                    offset += o * outStrides[a]
                }
                if inside { targets[kp * inPositions.count + ip] = offset }
            }
        }
        return targets
    }
}
