import Foundation
import KilnIR

extension CUDAConvolutionRunner {
    /// What identifies this convolution for the timing cache: shapes, geometry, epilogue and math.
    var signature: String {
        "x\(step.inputShape) w\(step.weightShape) p\(step.pads) s\(step.strides) d\(step.dilations) g\(step.groups) "
            + "b\(step.bias != nil) r\(step.residual != nil) a\(step.activation.map { "\($0)" } ?? "-") "
            + "m\(requestedMath)" + (step.dtype == .float32 ? "" : " \(step.dtype.onnxName)")
            + (step.channelsLast ? " nhwc" : "") + (step.outputStrides.map { " y\($0)" } ?? "")
    }

    /// Times the qualifying algorithms on random data of the step's sizes (a warm-up run, then the median of
    /// `runs`, each after the L2 cache is flushed) and keeps the fastest (by at least `CUDATacticTimer.margin`) whose output matches 64 outputs computed on the host
    /// (`SampledConvolution`) and the heuristics' first choice (relative L2 error at most 1e-5 in FP32 math,
    /// 1e-3 with TF32). A choice known for the signature (this process, a plan, a timing cache) applies
    /// without timing; with `measure` off nothing else is timed. Scratch memory is released before returning.
    /// How long the chosen algorithm took where this process timed it (`tune`); nil otherwise.
    var milliseconds: Double? { dnn.tuningLock.withLock { dnn.tunedMilliseconds[signature] } }

    /// Applies the choice known for the signature (this process, a plan, a timing cache); false when there is
    /// none or it does not apply here.
    func applyKnown() throws -> Bool {
        guard let known = dnn.tuningLock.withLock({ dnn.tunedAlgorithms[signature] }) else { return false }
        return try follow(Int(known))
    }

    /// Takes a choice (`choice`) made for this signature or for another shape of the same layer: Kiln's kernel,
    /// or cuDNN's algorithm, where it applies here; false (the heuristics' first stays) where it does not.
    @discardableResult
    func follow(_ other: Int) throws -> Bool {
        if other < 0 { return try chooseKernel(-1 - other) }
        guard let index = candidates.firstIndex(where: { Int($0.algorithm) == other }) else { return false }
        try choose(index)
        return true
    }

    @discardableResult
    func tune(context: CUDAContext, measure: Bool = true, runs: Int = 5) throws -> TacticOutcome {
        let tolerance = CUDATacticTimer.tolerance(dtype: step.dtype, tf32: requestedMath != CUDNN.fmaMath)
        if try applyKnown() { return TacticOutcome(rank: choice, launched: 0, rejected: 0) }
        let timedKernels = kernels.launches(timingStep)
        guard candidates.count + timedKernels.count > 1, measure else {
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
        let storedCount = sample.storedCount
        let y = try context.allocate(bytes: max(storedCount, 1) * step.dtype.byteSize)
        // A Y written into a wider tensor leaves the elements between its own as they are: zeros, for the
        // comparison of whole results.
        if step.outputStrides != nil { try stream.fill(device: y.address, byte: 0, bytes: y.bytes) }
        let largest =
            try candidates.indices.map { index -> Int in
                try choose(index)
                return workspaceBytes
            }.max() ?? 0
        let scratch = try context.allocate(bytes: max(largest, 1))
        // Operands by position for the kernels' timing launches (`timingStep` names each one apart).
        let addresses: [CUDAOperand: UInt64] = [
            .input(0): x.address, .input(1): w.address, .input(2): bias?.address ?? 0,
            .input(3): residual?.address ?? 0, .output(0): y.address,
        ]
        // cuDNN's candidates by index, then Kiln's kernels as −1 − i.
        let contest = try timer.fastest(
            Array(candidates.indices) + timedKernels.indices.map { -1 - $0 }, runs: runs,
            prepare: { index in
                guard index >= 0 else {
                    return timer.call(timedKernels[-1 - index], load: kernels.load, addresses: addresses)
                }
                try choose(index)
                return {
                    try self.enqueue(
                        x: x.address, w: w.address, bias: bias?.address ?? 0, residual: residual?.address ?? 0,
                        y: y.address, workspace: scratch.address, stream: stream.handle)
                }
            },
            output: { try timer.download(y, count: storedCount, dtype: step.dtype) },
            matchesHost: { sample.relativeError(of: $0, from: expected) <= sampleTolerance }, tolerance: tolerance)
        let (launched, rejected) = (contest.launched, contest.rejected)
        if contest.best == nil, rejected > 0 {
            FileHandle.standardError.write(
                Data(
                    ("note: no cuDNN algorithm for the convolution \(signature) matched the host reference; "
                        + "keeping the heuristics' first choice\n").utf8))
        }
        let best = contest.best ?? 0
        // A kernel (index −1 − i) is remembered as algorithm −1 − i; cuDNN's algorithms are 0 or more.
        let chosen: (index: Int, algorithm: Int32)
        if best < 0, try chooseKernel(-1 - best) {
            chosen = (best, Int32(best))
        } else {
            try choose(max(best, 0))
            chosen = (max(best, 0), algorithm)
        }
        let remembered = chosen.algorithm
        // The time of what runs: the contest's best, or none where the heuristics' first stays untimed.
        let milliseconds = contest.best == nil ? nil : contest.milliseconds
        dnn.tuningLock.withLock {
            dnn.tunedAlgorithms[signature] = remembered
            dnn.tunedMilliseconds[signature] = milliseconds
        }
        return TacticOutcome(rank: chosen.index, launched: launched, rejected: rejected)
    }

    /// The step `tune` times: the same geometry, with its operands named apart (inputs 0-3: X, W, bias,
    /// residual; output 0: Y), so a kernel's launch arguments can be given the timer's buffers by position.
    var timingStep: CUDAConvolution {
        var timed = step
        timed.x = .input(0)
        timed.w = .input(1)
        timed.bias = step.bias.map { _ in .input(2) }
        timed.residual = step.residual.map { _ in .input(3) }
        timed.y = .output(0)
        return timed
    }

}
