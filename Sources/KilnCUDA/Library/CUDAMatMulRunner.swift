import Foundation
import KilnIR

/// Runs one `CUDAMatMul` step with cuBLASLt. Descriptors, layouts and the algorithm are chosen once here; each
/// `enqueue` is one `cublasLtMatmul` call.
///
/// Row-major trick: a row-major m×n matrix is the column-major n×m matrix with the same bytes, so the runner
/// computes `D^T = op(B)^T · op(A)^T` in column-major terms: cuBLASLt's "A" is our B and its "B" is our A, its
/// m is our n and its n our m. The bias epilogue adds a vector along cuBLASLt's rows, i.e. our columns (length n),
/// exactly the row vector `CUDAMatMul.bias` describes.
///
/// Thread safety: `enqueue` rewrites the bias pointer in the shared operation descriptor, so calls are serialized
/// with a lock; the work itself is asynchronous on `stream`.
public final class CUDAMatMulRunner: @unchecked Sendable {
    public let step: CUDAMatMul
    /// Bytes of device workspace `enqueue` needs (0 when the algorithm needs none).
    public private(set) var workspaceBytes: Int
    /// How many algorithms the heuristics offered (`candidates` holds them, best ranked first).
    private let candidateCount: Int
    /// Heuristic results to choose from by measurement: `candidateCount` entries of `heuristicResultBytes`.
    private let candidates: UnsafeMutableRawPointer
    /// The signature under which a measured choice is remembered.
    let signature: String
    private let lib: CUBLASLt
    /// Owns every descriptor, so a throwing `init` releases what it created.
    private let owned: Resources
    private let operation: OpaquePointer
    private let layoutA: OpaquePointer
    private let layoutB: OpaquePointer
    private let layoutC: OpaquePointer
    private let layoutD: OpaquePointer
    private let lock = NSLock()

    /// The most algorithms the heuristics are asked for (and `tune` measures).
    let maxCandidates: Int
    /// Products may run in TF32 (their candidates are compared with a looser tolerance).
    let allowTF32: Bool
    /// Kiln's own kernels that compute this product too, timed beside cuBLASLt's algorithms; a choice of the
    /// i-th is remembered as rank −1 − i.
    let kernels: CUDAKernelTactics<CUDAMatMul>
    /// The kernel chosen instead of a cuBLASLt algorithm: its launch for `step` and its function.
    public private(set) var kernel: (launch: CUDALaunch, function: CUDAFunction)?
    /// What runs, as a tactic: the rank of cuBLASLt's candidate, or −1 − i for Kiln's kernel i.
    public private(set) var choice = 0

    /// Builds the descriptors for `step` and picks cuBLASLt's first heuristic algorithm that fits in
    /// `maxWorkspaceBytes` (`tune` may replace it by a faster one). Throws `unsupported` for a dtype other than float32, an activation cuBLASLt cannot
    /// apply exactly (only relu and tanh-GELU), sizes beyond int32, or when no algorithm is found.
    public init(
        step: CUDAMatMul, library: CUBLASLt, allowTF32: Bool, maxWorkspaceBytes: Int = 32 << 20,
        candidates maxCandidates: Int = 8, kernels: CUDAKernelTactics<CUDAMatMul> = .none
    ) throws {
        self.step = step
        self.maxCandidates = max(1, maxCandidates)
        self.allowTF32 = allowTF32
        self.kernels = kernels
        lib = library
        let lib = library
        // int8: A and B int8, D int32, no C, bias or activation (the lowering finishes the result itself); the
        // integer kernels want B transposed and A not (the "TN" form, in cuBLASLt's own terms). float8e4m3fn the
        // same with a float32 D (FP8 tensor cores, compute capability 8.9 and later).
        // float16 and bfloat16: A, B, C, D and the bias in the 16-bit type, products accumulated in float32.
        let integer = step.dtype == .int8
        let quantized = integer || step.dtype == .float8e4m3fn
        guard let floatType = CUBLASLt.dataType(step.dtype) ?? (integer ? CUBLASLt.dataR8I : nil) else {
            throw KilnError.unsupported(
                "cuBLASLt matMul runner handles float32, float16, bfloat16, int8 and float8e4m3fn, not "
                    + step.dtype.onnxName)
        }
        if quantized,
            step.c != nil || step.bias != nil || step.activation != nil || !step.transposeB || step.transposeA
        {
            throw KilnError.unsupported(
                "cuBLASLt \(step.dtype.onnxName) products take A [m, k] and B [n, k] only, no epilogue")
        }
        let limit = Int(Int32.max)
        guard step.m > 0, step.n > 0, step.k > 0, step.batch > 0, step.m <= limit, step.n <= limit,
            step.k <= limit, step.batch <= limit
        else {
            throw KilnError.unsupported("cuBLASLt matMul sizes m=\(step.m) n=\(step.n) k=\(step.k) b=\(step.batch)")
        }
        let epilogue = try Self.epilogue(step.activation, bias: step.bias != nil)
        let owned = Resources(library)
        self.owned = owned

        var op: OpaquePointer?
        let compute =
            integer
            ? CUBLASLt.compute32I
            : allowTF32 && step.dtype == .float32 ? CUBLASLt.compute32FFastTF32 : CUBLASLt.compute32F
        try lib.check(
            lib.matmulDescCreate(&op, compute, integer ? CUBLASLt.dataR32I : CUBLASLt.dataR32F),
            "cublasLtMatmulDescCreate")
        guard let op else { throw KilnError.runtime("cublasLt cublasLtMatmulDescCreate returned no descriptor") }
        owned.operation = op
        operation = op

        // cuBLASLt A = our B (n×k after op), cuBLASLt B = our A (k×m after op).
        let setDesc = lib.matmulDescSetAttribute
        try lib.setAttribute(
            setDesc, op, CUBLASLt.descTransA, step.transposeB ? CUBLASLt.opT : CUBLASLt.opN,
            "cublasLtMatmulDescSetAttribute(TRANSA)")
        try lib.setAttribute(
            setDesc, op, CUBLASLt.descTransB, step.transposeA ? CUBLASLt.opT : CUBLASLt.opN,
            "cublasLtMatmulDescSetAttribute(TRANSB)")
        try lib.setAttribute(setDesc, op, CUBLASLt.descEpilogue, epilogue, "cublasLtMatmulDescSetAttribute(EPILOGUE)")

        let (n, m, k) = (step.n, step.m, step.k)
        // Stored shapes in column-major terms (rows, cols, ld = rows: dense).
        let input = floatType
        let output = integer ? CUBLASLt.dataR32I : quantized ? CUBLASLt.dataR32F : floatType
        layoutA = try owned.layout(
            rows: step.transposeB ? k : n, cols: step.transposeB ? n : k, batch: step.batch, stride: step.strideB,
            type: input)
        layoutB = try owned.layout(
            rows: step.transposeA ? m : k, cols: step.transposeA ? k : m, batch: step.batch, stride: step.strideA,
            type: input)
        if let rowStride = step.rowStrideD, rowStride < n || step.c != nil || step.batch > 1 {
            throw KilnError.unsupported(
                "cuBLASLt product writing D rows \(rowStride) apart: needs at least n = \(n), no C, one batch entry")
        }
        let d = try owned.layout(
            rows: n, cols: m, batch: step.batch, stride: step.strideD, type: output, leading: step.rowStrideD)
        layoutD = d
        layoutC =
            step.c == nil
            ? d : try owned.layout(rows: n, cols: m, batch: step.batch, stride: step.strideC, type: output)

        var preference: OpaquePointer?
        try lib.check(lib.preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = lib.preferenceDestroy(preference) }
        try lib.setAttribute(
            lib.preferenceSetAttribute, preference, CUBLASLt.preferenceMaxWorkspaceBytes, UInt64(maxWorkspaceBytes),
            "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
        if step.dtype == .float16 || step.dtype == .bfloat16 {
            // Split-K partial sums stay float32: no algorithm that reduces them in place or in the 16-bit output.
            try lib.setAttribute(
                lib.preferenceSetAttribute, preference, CUBLASLt.preferenceReductionSchemeMask,
                CUBLASLt.reductionComputeType, "cublasLtMatmulPreferenceSetAttribute(REDUCTION_SCHEME_MASK)")
        }
        var found: Int32 = 0
        let results = UnsafeMutableRawPointer.allocate(
            byteCount: CUBLASLt.heuristicResultBytes * maxCandidates, alignment: 16)
        results.initializeMemory(
            as: UInt8.self, repeating: 0, count: CUBLASLt.heuristicResultBytes * maxCandidates)
        owned.candidates = results
        candidates = results
        try lib.check(
            lib.algoGetHeuristic(
                lib.handle, op, layoutA, layoutB, layoutC, layoutD, preference, Int32(maxCandidates), results,
                &found),
            "cublasLtMatmulAlgoGetHeuristic")
        let state = results.load(fromByteOffset: CUBLASLt.heuristicStateOffset, as: Int32.self)
        guard found >= 1, state == CUBLASLt.success else {
            throw KilnError.unsupported(
                "cuBLASLt has no algorithm for m=\(m) n=\(n) k=\(k) batch=\(step.batch) epilogue=\(epilogue)")
        }
        candidateCount = Int(found)
        signature =
            "m\(m) n\(n) k\(k) b\(step.batch) s\([step.strideA, step.strideB, step.strideC, step.strideD]) "
            + "t\(step.transposeA)\(step.transposeB) e\(epilogue) c\(step.c != nil) tf32 \(allowTF32) "
            + "ws \(maxWorkspaceBytes)" + (step.dtype == .float32 ? "" : " \(step.dtype.onnxName)")
            + (step.rowStrideD.map { " ld\($0)" } ?? "")
        owned.heuristic.copyMemory(from: results, byteCount: CUBLASLt.heuristicResultBytes)
        let workspace = owned.heuristic.load(fromByteOffset: CUBLASLt.heuristicWorkspaceOffset, as: UInt64.self)
        workspaceBytes = Int(workspace)
    }

    /// Measures the algorithms the heuristics offered on scratch buffers of the step's sizes (a warm-up run,
    /// then the median of `runs`) and keeps the fastest. The choice is remembered per signature, so a model's
    /// repeated shapes are timed once. Scratch memory is released before returning.
    /// With `measure` off (the build budget is spent), only a choice already known for the signature applies.
    @discardableResult
    public func tune(context: CUDAContext, runs: Int = 5, measure: Bool = true) throws -> TacticOutcome {
        if applyKnown() { return TacticOutcome(rank: choice, launched: 0, rejected: 0) }
        // 8-bit products keep the heuristics' choice: the timer's operands and check are float32.
        let timedKernels = kernels.launches(timingStep)
        guard candidateCount + timedKernels.count > 1, measure, step.dtype != .int8, step.dtype != .float8e4m3fn else {
            return TacticOutcome(rank: 0, launched: 0, rejected: 0)
        }
        let dtype = step.dtype
        let elementBytes = dtype.byteSize
        func span(_ rows: Int, _ cols: Int, _ stride: Int) -> Int {
            (rows * cols + (step.batch > 1 ? stride * (step.batch - 1) : 0)) * elementBytes
        }
        let timer = try CUDATacticTimer(context: context)
        func values(_ bytes: Int, seed: UInt64) throws -> [Float] {
            try CUDATacticTimer.randomValues(count: bytes / elementBytes, seed: seed, dtype: dtype)
        }
        let hostA = try values(span(step.m, step.k, step.strideA), seed: 1)
        let hostB = try values(span(step.k, step.n, step.strideB), seed: 2)
        let hostC = try step.c.map { _ in try values(span(step.m, step.n, step.strideC), seed: 3) }
        let hostBias = try step.bias.map { _ in try values(step.n * elementBytes, seed: 4) }
        let a = try timer.upload(context, hostA, dtype: dtype)
        let b = try timer.upload(context, hostB, dtype: dtype)
        let outputCount = step.rowStrideD.map { step.m * $0 } ?? span(step.m, step.n, step.strideD) / elementBytes
        let d = try context.allocate(bytes: outputCount * elementBytes)
        // A D written into a wider matrix leaves the columns between its rows as they are: zeros, for the
        // comparison of whole results.
        if step.rowStrideD != nil { try timer.stream.fill(device: d.address, byte: 0, bytes: d.bytes) }
        let c = try hostC.map { try timer.upload(context, $0, dtype: dtype) }
        let bias = try hostBias.map { try timer.upload(context, $0, dtype: dtype) }
        // Every candidate must reproduce sampled entries computed on the host, and the whole result of the
        // heuristics' first choice that runs.
        let sample = SampledProduct.supports(step) ? SampledProduct(step) : nil
        let expected = sample?.reference(a: hostA, b: hostB, c: hostC, bias: hostBias, tf32: allowTF32)
        let largest = (0..<candidateCount).map { workspace(ofRank: $0) }.max() ?? 0
        let scratch = try context.allocate(bytes: max(largest, 1))
        // Operands by position for the kernels' timing launches (`timingStep` names each one apart).
        let addresses: [CUDAOperand: UInt64] = [
            .input(0): a.address, .input(1): b.address, .input(2): c?.address ?? 0, .input(3): bias?.address ?? 0,
            .output(0): d.address,
        ]
        // cuBLASLt's candidates by rank, then Kiln's kernels as −1 − i.
        let contest = try timer.fastest(
            Array(0..<candidateCount) + timedKernels.indices.map { -1 - $0 }, runs: runs,
            prepare: { rank in
                guard rank >= 0 else {
                    return timer.call(timedKernels[-1 - rank], load: kernels.load, addresses: addresses)
                }
                choose(rank: rank)
                return {
                    try self.enqueue(
                        a: a.address, b: b.address, c: c?.address ?? 0, bias: bias?.address ?? 0, d: d.address,
                        workspace: scratch.address, stream: timer.stream.handle)
                }
            },
            output: { try timer.download(d, count: outputCount, dtype: dtype) },
            matchesHost: { output in
                guard let sample, let expected else { return true }
                return sample.relativeError(of: output, from: expected)
                    <= SampledProduct.tolerance(step, tf32: allowTF32)
            },
            tolerance: CUDATacticTimer.tolerance(dtype: dtype, tf32: allowTF32))
        let (launched, rejected) = (contest.launched, contest.rejected)
        if contest.best == nil, rejected > 0 {
            FileHandle.standardError.write(
                Data(
                    ("note: no cuBLASLt algorithm for the \(step.m)x\(step.n)x\(step.k) product matched the host "
                        + "reference; keeping the heuristics' first choice\n").utf8))
        }
        let best = contest.best ?? 0
        let chosen = best < 0 && chooseKernel(-1 - best) ? best : max(best, 0)
        if chosen >= 0 { choose(rank: chosen) }
        lib.tuningLock.lock()
        lib.tunedRanks[signature] = chosen
        lib.tuningLock.unlock()
        return TacticOutcome(rank: chosen, launched: launched, rejected: rejected)
    }

    /// Applies the choice known for the signature (this process, a plan, a timing cache); false when there is
    /// none, or it was found among more candidates than this runner has (a higher level's cache).
    func applyKnown() -> Bool {
        guard let known = lib.tuningLock.withLock({ lib.tunedRanks[signature] }),
            known < 0 ? chooseKernel(-1 - known) : known < candidateCount
        else { return false }
        if known >= 0 { choose(rank: known) }
        return true
    }

    /// Takes the choice another shape of the same layer made (`choice`): Kiln's kernel where it applies to this
    /// step; a cuBLASLt rank means nothing at other sizes, so the heuristics' first stays.
    func follow(_ other: Int) {
        if other < 0 { _ = chooseKernel(-1 - other) }
    }

    /// The step `tune` times: the same sizes, with its operands named apart (inputs 0-3: A, B, C, bias; output
    /// 0: D), so a kernel's launch arguments can be given the timer's buffers by position.
    private var timingStep: CUDAMatMul {
        var timed = step
        timed.a = .input(0)
        timed.b = .input(1)
        timed.c = step.c.map { _ in .input(2) }
        timed.bias = step.bias.map { _ in .input(3) }
        timed.d = .output(0)
        return timed
    }

    private func workspace(ofRank rank: Int) -> Int {
        Int(
            candidates.load(
                fromByteOffset: rank * CUBLASLt.heuristicResultBytes + CUBLASLt.heuristicWorkspaceOffset,
                as: UInt64.self))
    }

    /// Makes the heuristic result of `rank` the algorithm `enqueue` runs (and no kernel).
    private func choose(rank: Int) {
        let r = min(max(rank, 0), candidateCount - 1)
        lock.lock()
        defer { lock.unlock() }
        owned.heuristic.copyMemory(
            from: candidates + r * CUBLASLt.heuristicResultBytes, byteCount: CUBLASLt.heuristicResultBytes)
        workspaceBytes = workspace(ofRank: r)
        kernel = nil
        choice = r
    }

    /// Makes Kiln's kernel `index` what runs, cuBLASLt's first candidate set up beside it for operands the
    /// kernel cannot take; false when there is no such kernel or it does not load.
    private func chooseKernel(_ index: Int) -> Bool {
        guard let chosen = kernels.chosen(index, for: step) else { return false }
        choose(rank: 0)
        kernel = chosen
        choice = -1 - index
        return true
    }

    /// The descriptors one runner created, destroyed together.
    private final class Resources {
        let lib: CUBLASLt
        var operation: OpaquePointer?
        var layouts: [OpaquePointer] = []
        var candidates: UnsafeMutableRawPointer?
        /// The chosen cublasLtMatmulHeuristicResult_t; its first 64 bytes are the cublasLtMatmulAlgo_t.
        let heuristic: UnsafeMutableRawPointer

        init(_ lib: CUBLASLt) {
            self.lib = lib
            heuristic = UnsafeMutableRawPointer.allocate(byteCount: CUBLASLt.heuristicResultBytes, alignment: 16)
            heuristic.initializeMemory(as: UInt8.self, repeating: 0, count: CUBLASLt.heuristicResultBytes)
        }

        deinit {
            for layout in layouts { _ = lib.matrixLayoutDestroy(layout) }
            if let operation { _ = lib.matmulDescDestroy(operation) }
            heuristic.deallocate()
            candidates?.deallocate()
        }

        /// A column-major layout of `type` elements, its columns `leading` elements apart (nil: `rows`, dense),
        /// strided-batched when `batch` > 1.
        func layout(
            rows: Int, cols: Int, batch: Int, stride: Int, type: Int32, leading: Int? = nil
        ) throws -> OpaquePointer {
            var layout: OpaquePointer?
            try lib.check(
                lib.matrixLayoutCreate(&layout, type, UInt64(rows), UInt64(cols), Int64(leading ?? rows)),
                "cublasLtMatrixLayoutCreate")
            guard let layout else { throw KilnError.runtime("cublasLt cublasLtMatrixLayoutCreate returned no layout") }
            layouts.append(layout)
            if batch > 1 {
                try lib.setAttribute(
                    lib.matrixLayoutSetAttribute, layout, CUBLASLt.layoutBatchCount, Int32(batch),
                    "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)")
                try lib.setAttribute(
                    lib.matrixLayoutSetAttribute, layout, CUBLASLt.layoutStridedBatchOffset, Int64(stride),
                    "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)")
            }
            return layout
        }
    }

    /// The cublasLtEpilogue_t for an activation, with or without the bias vector.
    static func epilogue(_ activation: EpilogueActivation?, bias: Bool) throws -> UInt32 {
        switch activation {
        case nil: return bias ? CUBLASLt.epilogueBias : CUBLASLt.epilogueDefault
        case .relu: return bias ? CUBLASLt.epilogueReluBias : CUBLASLt.epilogueRelu
        // cuBLASLt's GELU epilogue is the tanh approximation, so only that form maps onto it.
        case .gelu(tanh: true): return bias ? CUBLASLt.epilogueGeluBias : CUBLASLt.epilogueGelu
        case let other?:
            throw KilnError.unsupported("cuBLASLt has no \(other) epilogue; the lowering must apply it in a kernel")
        }
    }

    /// Enqueues `D = activation(alpha * op(A)·op(B) + beta * C + bias)` on `stream` (a CUstream; nil is the
    /// default stream). Pass 0 for `c` and `bias` when the step has none; `workspace` must hold `workspaceBytes`.
    public func enqueue(
        a: UInt64, b: UInt64, c: UInt64, bias: UInt64, d: UInt64, workspace: UInt64, stream: OpaquePointer?
    ) throws {
        guard step.bias == nil || bias != 0, step.c == nil || c != 0, a != 0, b != 0, d != 0 else {
            throw KilnError.invalidArgument("cuBLASLt matMul: a required device address is 0")
        }
        guard workspaceBytes == 0 || workspace != 0 else {
            throw KilnError.invalidArgument("cuBLASLt matMul needs \(workspaceBytes) bytes of workspace")
        }
        lock.lock()
        defer { lock.unlock() }
        if step.bias != nil {
            try lib.setAttribute(
                lib.matmulDescSetAttribute, operation, CUBLASLt.descBiasPointer, libraryDevicePointer(bias),
                "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
        }
        // The scale type follows the compute type: float32 alpha and beta, or int32 1 and 0 for int8 products.
        let beta: Float = step.c == nil ? 0 : step.beta
        var alphaBits = step.dtype == .int8 ? UInt32(1) : step.alpha.bitPattern
        var betaBits = step.dtype == .int8 ? UInt32(0) : beta.bitPattern
        let cAddress = step.c == nil ? d : c
        let status = withUnsafePointer(to: &alphaBits) { alphaPointer in
            withUnsafePointer(to: &betaBits) { betaPointer in
                lib.matmul(
                    lib.handle, operation, alphaPointer, libraryDevicePointer(b), layoutA, libraryDevicePointer(a),
                    layoutB, betaPointer, libraryDevicePointer(cAddress), layoutC, libraryDevicePointer(d), layoutD,
                    owned.heuristic, libraryDevicePointer(workspace), workspaceBytes, stream)
            }
        }
        try lib.check(status, "cublasLtMatmul")
    }
}
