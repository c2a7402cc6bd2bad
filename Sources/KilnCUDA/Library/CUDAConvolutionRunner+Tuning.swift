import Foundation
import KilnIR

extension CUDAConvolutionRunner {
    /// What identifies this convolution for the timing cache: shapes, geometry, epilogue and math.
    var signature: String {
        "x\(step.inputShape) w\(step.weightShape) p\(step.pads) s\(step.strides) d\(step.dilations) g\(step.groups) "
            + "b\(step.bias != nil) r\(step.residual != nil) a\(step.activation.map { "\($0)" } ?? "-") "
            + "m\(requestedMath)" + (step.dtype == .float32 ? "" : " \(step.dtype.onnxName)")
            + (step.channelsLast ? " nhwc" : "")
    }

    /// Times the qualifying algorithms on random data of the step's sizes (a warm-up run, then the median of
    /// `runs`, each after the L2 cache is flushed) and keeps the fastest (by at least `CUDATacticTimer.margin`) whose output matches 64 outputs computed on the host
    /// (`SampledConvolution`) and the heuristics' first choice (relative L2 error at most 1e-5 in FP32 math,
    /// 1e-3 with TF32). A choice known for the signature (this process, a plan, a timing cache) applies
    /// without timing; with `measure` off nothing else is timed. Scratch memory is released before returning.
    @discardableResult
    func tune(context: CUDAContext, measure: Bool = true, runs: Int = 5) throws -> TacticOutcome {
        let tolerance = CUDATacticTimer.tolerance(dtype: step.dtype, tf32: requestedMath != CUDNN.fmaMath)
        let known = dnn.tuningLock.withLock { dnn.tunedAlgorithms[signature] }
        if let known, let index = candidates.firstIndex(where: { $0.algorithm == known }) {
            try choose(index)
            return TacticOutcome(rank: index, launched: 0, rejected: 0)
        }
        guard candidates.count > 1, measure else {
            return TacticOutcome(rank: 0, launched: 0, rejected: 0)
        }
        let timer = try CUDATacticTimer(context: context)
        let stream = timer.stream
        func values(_ count: Int, seed: UInt64) throws -> [Float] {
            try CUDATacticTimer.randomValues(count: count, seed: seed, dtype: step.dtype)
        }
        let outputCount = step.outputShape.reduce(1, *)
        let hostX = try values(step.inputShape.reduce(1, *), seed: 1)
        let hostW = try values(step.weightShape.reduce(1, *), seed: 2)
        let hostBias = try step.bias.map { _ in try values(step.outputShape[1], seed: 3) }
        let hostResidual = try step.residual.map { _ in try values(outputCount, seed: 4) }
        let x = try timer.upload(context, hostX, dtype: step.dtype)
        let w = try timer.upload(context, hostW, dtype: step.dtype)
        let bias = try hostBias.map { try timer.upload(context, $0, dtype: step.dtype) }
        let residual = try hostResidual.map { try timer.upload(context, $0, dtype: step.dtype) }
        // Every candidate must reproduce sampled outputs computed on the host, and the whole result of the
        // heuristics' first choice that runs.
        let tf32 = requestedMath != CUDNN.fmaMath && step.dtype == .float32
        let sample = SampledConvolution(step)
        let expected = sample.reference(x: hostX, w: hostW, bias: hostBias, residual: hostResidual, tf32: tf32)
        let sampleTolerance = sampledTolerance(step.dtype, terms: sample.terms, tf32: tf32)
        let y = try context.allocate(bytes: max(outputCount, 1) * step.dtype.byteSize)
        let largest =
            try candidates.indices.map { index -> Int in
                try choose(index)
                return workspaceBytes
            }.max() ?? 0
        let scratch = try context.allocate(bytes: max(largest, 1))
        var reference: [Float] = []
        var (launched, rejected) = (0, 0)
        var best = (index: 0, milliseconds: Double.infinity)
        for index in candidates.indices {
            try choose(index)
            let median: Double
            do {
                median = try timer.median(runs: runs) {
                    try enqueue(
                        x: x.address, w: w.address, bias: bias?.address ?? 0, residual: residual?.address ?? 0,
                        y: y.address, workspace: scratch.address, stream: stream.handle)
                }
            } catch {
                continue  // an algorithm that fails to run is not a candidate
            }
            launched += 1
            let output = try timer.download(y, count: outputCount, dtype: step.dtype)
            if sample.relativeError(of: output, from: expected) > sampleTolerance {
                rejected += 1
                continue
            }
            if reference.isEmpty {
                reference = output
            } else if CUDATacticTimer.relativeError(output, reference) > tolerance {
                continue  // faster is no use if the result differs
            }
            if best.milliseconds.isInfinite {
                best = (index, median)  // the reference: the heuristics' first choice that runs
            } else if median < best.milliseconds * (1 - CUDATacticTimer.margin) {
                best = (index, median)
            }
        }
        if best.milliseconds.isInfinite, rejected > 0 {
            FileHandle.standardError.write(
                Data(
                    ("note: no cuDNN algorithm for the convolution \(signature) matched the host reference; "
                        + "keeping the heuristics' first choice\n").utf8))
        }
        try choose(best.index)
        let chosen = algorithm
        dnn.tuningLock.withLock { dnn.tunedAlgorithms[signature] = chosen }
        return TacticOutcome(rank: best.index, launched: launched, rejected: rejected)
    }

}
