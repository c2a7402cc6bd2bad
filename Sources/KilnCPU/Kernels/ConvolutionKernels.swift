import KilnIR
import KilnRuntime

/// Kernels for convolution, convolution.integer, convolution.deformable, convolution.causal, deconvolution and
/// col2im.
enum ConvolutionKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        LinearAlgebraKernels.statefulKernel(ConvolutionLayer.self) { ConvolutionKernel($0, tuner: $1.tuner) },
        cpuKernel(ConvolutionIntegerLayer.self) { layer, inputs, _ in
            [.tensor(try ConvolutionReference.integer(layer.parameters, inputs))]
        },
        cpuKernel(DeconvolutionLayer.self) { layer, inputs, context in
            [.tensor(try DeconvolutionKernel.run(layer, inputs, threads: context.threads))]
        },
        cpuKernel(DeformableConvolutionLayer.self) { layer, inputs, _ in
            [.tensor(try DeformableConvolution.run(layer, inputs))]
        },
        cpuKernel(CausalConvolutionLayer.self) { layer, inputs, _ in try CausalConvolution.run(layer, inputs) },
        cpuKernel(Col2ImLayer.self) { layer, inputs, _ in [.tensor(try ConvolutionReference.col2im(layer, inputs))] },
    ]
}

/// The validated shapes of one forward convolution: X `[N, C, spatial...]`, W `[M, C/group, kernel...]`.
struct ConvolutionGeometry {
    let batch: Int
    let inChannels: Int
    let outChannels: Int
    let group: Int
    let inSpatial: [Int]
    let r: ConvolutionParameters.Resolved

    init(_ p: ConvolutionParameters, x: [Int], w: [Int]) throws {
        guard x.count >= 3, w.count == x.count else {
            throw KilnError.shapeMismatch("convolution needs X [N, C, ...] and W of the same rank, got \(x) and \(w)")
        }
        batch = x[0]
        inChannels = x[1]
        outChannels = w[0]
        group = p.group
        guard group > 0, inChannels == w[1] * group, outChannels % group == 0 else {
            throw KilnError.shapeMismatch("convolution with group \(group): X \(x) and W \(w) do not match")
        }
        inSpatial = Array(x.dropFirst(2))
        let weightKernel = Array(w.dropFirst(2))
        r = try p.resolve(input: inSpatial, kernel: weightKernel)
        guard r.kernel == weightKernel else {
            throw KilnError.shapeMismatch("kernel_shape \(r.kernel) does not match the weights \(weightKernel)")
        }
    }

    var outShape: [Int] { [batch, outChannels] + r.output }
    var inSize: Int { inSpatial.reduce(1, *) }
    var outSize: Int { r.output.reduce(1, *) }
    var kernelSize: Int { r.kernel.reduce(1, *) }
    var groupInChannels: Int { inChannels / group }
    var groupOutChannels: Int { outChannels / group }
}

/// Forward convolution. float32 runs as im2col + SGEMM with the weights packed once per weight tensor (1x1
/// stride-1 convolutions read the input directly), on the GEMM tactic the tuner chose for its shapes, except
/// depthwise layers, which run directly (`DepthwiseConvolution`);
/// float16/bfloat16 compute in float32, constant weights widened once; double uses the direct reference loop.
final class ConvolutionKernel: Kernel {
    let layer: ConvolutionLayer
    let tuner: GemmTuner
    let packedWeights = PackedWeightCache()
    /// The weights as float32 (float16/bfloat16 ones widened), kept while they are the same tensor.
    let widenedWeights = WeightCache<Tensor>()

    init(_ layer: ConvolutionLayer, tuner: GemmTuner) {
        self.layer = layer
        self.tuner = tuner
    }

    func execute(_ inputs: [Value?], _ context: KernelContext) throws -> [Value] {
        if let high = layer.inputMax {
            var unclamped = layer
            unclamped.inputMax = nil
            var clamped = inputs
            clamped[0] = .tensor(try ChannelsLastKernels.clamped(try inputs.tensor(0), above: high))
            return try ConvolutionKernel(unclamped, tuner: tuner).execute(clamped, context)
        }
        if layer.channelsLast {
            var first = layer
            first.channelsLast = false
            let kernel = ConvolutionKernel(first, tuner: tuner)
            return try ChannelsLastKernels.run(inputs, permuting: [0, 1, 3], threads: context.threads) {
                try kernel.execute($0, context)
            }
        }
        let x = try inputs.tensor(0)
        let w = try inputs.tensor(1)
        let b = try inputs.optionalTensor(2)
        try LinearAlgebraSupport.requireSameType([x, w] + (b.map { [$0] } ?? []), "convolution")
        let g = try ConvolutionGeometry(layer.parameters, x: x.shape, w: w.shape)
        if let b, b.count != g.outChannels {
            throw KilnError.shapeMismatch("convolution bias has \(b.count) elements, \(g.outChannels) expected")
        }
        let residual = layer.epilogue.residual ? try inputs.tensor(3) : nil
        if let residual {
            guard residual.dtype == x.dtype, residual.shape == g.outShape else {
                throw KilnError.shapeMismatch(
                    "convolution residual is \(residual.dtype.onnxName)\(residual.shape), expected \(g.outShape)")
            }
        }
        let threads = context.threads
        let signature =
            "cpu.conv \(x.dtype.onnxName) x=\(x.shape) w=\(w.shape) y=\(g.outShape) s=\(g.r.strides) "
            + "p=\(g.r.padsBegin) d=\(g.r.dilations) g=\(g.group) threads=\(threads)"
        let work = g.batch * g.outChannels * g.outSize * g.groupInChannels * g.kernelSize
        switch x.dtype {
        case .float32, .float16, .bfloat16:
            // 16-bit floats compute in float32 (float32 comes back as it is); constant weights are widened once.
            let f = LinearAlgebraSupport.widened
            let (xf, wf, bf, rf) = (f(x), widenedWeights.value(for: w) { f(w) }, b.map(f), residual.map(f))
            // A depthwise layer runs its own loop, with no GEMM tactic to choose.
            let tactic =
                DepthwiseConvolution.applies(g)
                ? .heuristic
                : try tuner.tactic(signature: signature, work: work) {
                    floatConvolution(xf, wf, bf, rf, g, threads: threads, tactic: $0)
                }
            let y = floatConvolution(xf, wf, bf, rf, g, threads: threads, tactic: tactic)
            return [.tensor(LinearAlgebraSupport.narrowed(y, to: x.dtype))]
        case .float64 where layer.epilogue.isEmpty:
            return [.tensor(try ConvolutionReference.forward(g, x, w, b))]
        default:
            throw KilnError.unsupported("convolution of \(x.dtype.onnxName)")
        }
    }

    private func floatConvolution(
        _ x: Tensor, _ w: Tensor, _ b: Tensor?, _ residual: Tensor?, _ g: ConvolutionGeometry, threads: Int,
        tactic: GemmTactic
    ) -> Tensor {
        if DepthwiseConvolution.applies(g) {
            return Tensor.build(Float.self, shape: g.outShape) { out in
                guard let o = out.baseAddress, out.count > 0 else { return }
                x.withUnsafeBuffer(as: Float.self) { xb in
                    w.withUnsafeBuffer(as: Float.self) { wb in
                        LinearAlgebraSupport.withFloats(b) { bias in
                            LinearAlgebraSupport.withFloats(residual) { residual in
                                guard let xp = xb.baseAddress, let wp = wb.baseAddress else { return }
                                let epilogue = GemmEpilogue(
                                    rowBias: bias, residual: residual, residualStride: g.outSize,
                                    activation: layer.epilogue.activation)
                                DepthwiseConvolution.run(xp, wp, into: o, g, epilogue: epilogue, threads: threads)
                            }
                        }
                    }
                }
            }
        }
        let mg = g.groupOutChannels
        let cg = g.groupInChannels
        let depth = cg * g.kernelSize
        let outSize = g.outSize
        let pack = {
            w.withUnsafeBuffer(as: Float.self) { wb in
                (0..<g.group).map { group in
                    guard let base = wb.baseAddress else {
                        return PackedPanels(extent: mg, depth: depth, width: tactic.mr, blockSize: tactic.kc)
                    }
                    return PackedPanels.pack(
                        FloatMatrix(base: base + group * mg * depth, rowStride: depth, columnStride: 1),
                        extent: mg, depth: depth, width: tactic.mr, blockSize: tactic.kc, threads: threads)
                }
            }
        }
        let weights = packedWeights.value(for: w, layout: [tactic.mr, tactic.kc], pack)
        let pointwise =
            g.r.kernel.allSatisfy { $0 == 1 } && g.r.strides.allSatisfy { $0 == 1 }
            && g.r.padsBegin.allSatisfy { $0 == 0 }
        // Groups (and images) of a grouped convolution are independent products: where there are enough to go
        // round, each thread takes whole ones and runs them alone, instead of every small product being split
        // across the threads (a synchronization each, which costs more than the work in ShuffleNet's layers).
        let items = g.batch * g.group
        let acrossGroups =
            g.group > 1 && threads > 1 && items >= threads && (items % threads == 0 || items >= 4 * threads)
        let inner = acrossGroups ? 1 : threads
        return Tensor.build(Float.self, shape: g.outShape) { out in
            guard let o = out.baseAddress, out.count > 0 else { return }
            x.withUnsafeBuffer(as: Float.self) { xb in
                guard let xp = xb.baseAddress else { return }
                LinearAlgebraSupport.withFloats(b) { bias in
                    LinearAlgebraSupport.withFloats(residual) { residual in
                        Parallel.forEach(items, threads: acrossGroups ? threads : 1) { range in
                            for item in range {
                                let (n, group) = (item / g.group, item % g.group)
                                let xg = xp + (n * g.inChannels + group * cg) * g.inSize
                                let first = (n * g.outChannels + group * mg) * outSize
                                let og = o + first
                                // Bias, residual and activation are applied per tile inside the GEMM,
                                // not in passes of their own over the output.
                                let epilogue = GemmEpilogue(
                                    rowBias: bias.map { $0 + group * mg }, residual: residual.map { $0 + first },
                                    residualStride: outSize, activation: layer.epilogue.activation)
                                // A few output channels against a large im2col: B made a block at a time.
                                if !pointwise, mg <= tactic.mc, tactic.kernel.tile != nil,
                                    let block = Im2ColBlock(xg, spatial: g.inSpatial, g.r, tactic: tactic)
                                {
                                    SGEMM.multiply(
                                        weights[group], columns: outSize,
                                        packB: { block.pack(block: $0, panels: $1, depth: depth, into: $2) },
                                        into: og, ldc: outSize, epilogue: epilogue, tactic: tactic, threads: inner)
                                    continue
                                }
                                let columns: PackedPanels
                                if pointwise {
                                    columns = PackedPanels.pack(
                                        FloatMatrix(base: xg, rowStride: 1, columnStride: outSize), extent: outSize,
                                        depth: cg, width: tactic.nr, blockSize: tactic.kc, threads: inner)
                                } else {
                                    columns = Im2Col.pack(
                                        xg, channels: cg, spatial: g.inSpatial, g.r, tactic: tactic, threads: inner)
                                }
                                SGEMM.multiply(
                                    weights[group], columns, into: og, ldc: outSize, epilogue: epilogue,
                                    tactic: tactic, threads: inner)
                            }
                        }
                    }
                }
            }
        }
    }

}
