import Foundation
import KilnIR

/// cuBLASLt and cuDNN for one device, opened on first use: a model without convolutions never needs cuDNN,
/// and a machine without cuDNN still runs everything else.
final class CUDALibraries: @unchecked Sendable {
    private let context: CUDAContext
    /// Where Kiln's own kernels timed beside the libraries' algorithms are compiled and loaded.
    private let modules: CUDAModuleCache
    private let lock = NSLock()
    private var blas: Result<CUBLASLt, Error>?
    private var dnn: Result<CUDNN, Error>?

    init(context: CUDAContext, modules: CUDAModuleCache) throws {
        self.context = context
        self.modules = modules
    }

    /// cuBLASLt algorithm ranks and cuDNN algorithms chosen before the library opened (from a plan or a
    /// timing cache).
    private var pendingRanks: [String: Int] = [:]
    private var pendingAlgorithms: [String: Int32] = [:]

    func cublasLt() throws -> CUBLASLt {
        try opened(&blas) {
            let library = try CUBLASLt()
            library.tunedRanks.merge(pendingRanks) { _, given in given }
            return library
        }
    }

    static let matMulPrefix = "cublasLt.matmul "
    static let convolutionPrefix = "cudnn.conv "
    static let kernelPrefix = "kiln.kernel "

    /// Which of Kiln's alternative launches runs a step (`CUDALaunchChoice`), by signature: timed, or from a
    /// plan or a timing cache.
    private var kernelChoices: [String: Int] = [:]

    func kernelChoice(_ signature: String) -> Int? { lock.withLock { kernelChoices[signature] } }

    func remember(kernelChoice index: Int, for signature: String) {
        lock.withLock { kernelChoices[signature] = index }
    }

    /// Timed choices as tactics: `cublasLt.matmul <signature>` -> the rank of the heuristic's candidate,
    /// `cudnn.conv <signature>` -> the cudnnConvolutionFwdAlgo_t; either −1 − i for the i-th of Kiln's own
    /// kernels for the layer (`CUDASplitProduct`).
    var tactics: [String: String] {
        lock.lock()
        defer { lock.unlock() }
        var ranks = pendingRanks
        if case .success(let library)? = blas {
            library.tuningLock.withLock { ranks.merge(library.tunedRanks) { _, tuned in tuned } }
        }
        var algorithms = pendingAlgorithms
        if case .success(let library)? = dnn {
            library.tuningLock.withLock { algorithms.merge(library.tunedAlgorithms) { _, tuned in tuned } }
        }
        var all: [String: String] = [:]
        for (signature, rank) in ranks { all[Self.matMulPrefix + signature] = String(rank) }
        for (signature, algorithm) in algorithms { all[Self.convolutionPrefix + signature] = String(algorithm) }
        for (signature, index) in kernelChoices { all[Self.kernelPrefix + signature] = String(index) }
        return all
    }

    /// Takes the tactics this backend knows; others (another backend's) are left alone.
    func preload(_ tactics: [String: String]) {
        var ranks: [String: Int] = [:]
        var algorithms: [String: Int32] = [:]
        var kernels: [String: Int] = [:]
        for (key, value) in tactics {
            if key.hasPrefix(Self.matMulPrefix), let rank = Int(value) {
                ranks[String(key.dropFirst(Self.matMulPrefix.count))] = rank
            } else if key.hasPrefix(Self.convolutionPrefix), let algorithm = Int32(value) {
                algorithms[String(key.dropFirst(Self.convolutionPrefix.count))] = algorithm
            } else if key.hasPrefix(Self.kernelPrefix), let index = Int(value), index >= 0 {
                kernels[String(key.dropFirst(Self.kernelPrefix.count))] = index
            }
        }
        lock.lock()
        defer { lock.unlock() }
        kernelChoices.merge(kernels) { _, given in given }
        pendingRanks.merge(ranks) { _, given in given }
        pendingAlgorithms.merge(algorithms) { _, given in given }
        if case .success(let library)? = blas {
            library.tuningLock.withLock { library.tunedRanks.merge(ranks) { _, given in given } }
        }
        if case .success(let library)? = dnn {
            library.tuningLock.withLock { library.tunedAlgorithms.merge(algorithms) { _, given in given } }
        }
    }

    func cudnn() throws -> CUDNN {
        try opened(&dnn) {
            let library = try CUDNN()
            library.tunedAlgorithms.merge(pendingAlgorithms) { _, given in given }
            return library
        }
    }

    /// The library in `slot`, opening it (with the context current) on first use; a failure is kept too,
    /// so a missing library is reported the same way every time without retrying the load.
    private func opened<L>(_ slot: inout Result<L, Error>?, _ open: () throws -> L) throws -> L {
        lock.lock()
        defer { lock.unlock() }
        if slot == nil {
            slot = Result {
                try context.makeCurrent()
                return try open()
            }
        }
        guard let result = slot else { throw KilnError.runtime("library slot left empty") }
        return try result.get()
    }

    /// The cuBLASLt algorithm for `step`, or Kiln's split-TF32 kernel for it, chosen by `rule` among
    /// `candidates` of the heuristics' algorithms.
    func runner(
        for step: CUDAMatMul, allowTF32: Bool, candidates: Int, rule: CUDATacticRule
    ) throws
        -> CUDAMatMulRunner
    {
        let runner = try CUDAMatMulRunner(
            step: step, library: try cublasLt(), allowTF32: allowTF32, candidates: candidates,
            kernels: .splitTF32(modules: modules, allowTF32: allowTF32))
        switch rule {
        case .timed(let tune, let deadline):
            if tune { try runner.tune(context: context, measure: deadline.map { Date() < $0 } ?? true) }
        case .following(let other):
            if !runner.applyKnown(), let other { runner.follow(other) }
        }
        return runner
    }

    /// The cuDNN algorithm for `step`, or Kiln's split-TF32 kernel for it, chosen by `rule` (timing checks each
    /// candidate's result first).
    func runner(for step: CUDAConvolution, allowTF32: Bool, rule: CUDATacticRule) throws -> CUDAConvolutionRunner {
        let runner = try CUDAConvolutionRunner(
            step: step, library: try cudnn(), allowTF32: allowTF32,
            kernels: .splitTF32(modules: modules, allowTF32: allowTF32))
        switch rule {
        case .timed(let tune, let deadline):
            if tune { try runner.tune(context: context, measure: deadline.map { Date() < $0 } ?? true) }
        case .following(let other):
            if try !runner.applyKnown(), let other { try runner.follow(other) }
        }
        return runner
    }
}

/// How a library step's algorithm is chosen.
enum CUDATacticRule {
    /// As a build chooses: with `tune`, timed among the candidates (a choice known for the signature applies
    /// untimed, and past `deadline`, the build budget, nothing more is timed); without, the heuristics' first.
    case timed(tune: Bool, deadline: Date?)
    /// Nothing timed, for a shape met after the build: a choice known for the signature, else the one the same
    /// layer made at a shape the build compiled (nil: none) where it applies, else the heuristics' first.
    case following(Int?)
}

/// A library algorithm chosen once per shape and shared by every context that binds it.
enum CUDALibraryRunner {
    case matMul(CUDAMatMulRunner, CUDAMatMul)
    case convolution(CUDAConvolutionRunner, CUDAConvolution)

    /// The key of this layer's choice among a device's tactics.
    var tacticKey: String {
        switch self {
        case .matMul(let runner, _): CUDALibraries.matMulPrefix + runner.signature
        case .convolution(let runner, _): CUDALibraries.convolutionPrefix + runner.signature
        }
    }

    /// The choice as a tactic (`CUDAMatMulRunner.choice`, `CUDAConvolutionRunner.choice`).
    var choice: Int {
        switch self {
        case .matMul(let runner, _): runner.choice
        case .convolution(let runner, _): runner.choice
        }
    }

    /// Kiln's kernel chosen in place of the library's algorithm, if one was.
    var kernel: (launch: CUDALaunch, function: CUDAFunction)? {
        switch self {
        case .matMul(let runner, _): runner.kernel
        case .convolution(let runner, _): runner.kernel
        }
    }

    /// Every operand the step reads or writes.
    private var operands: [CUDAOperand] {
        switch self {
        case .matMul(_, let step): [step.a, step.b, step.d] + [step.c, step.bias].compactMap { $0 }
        case .convolution(_, let step): [step.x, step.w, step.y] + [step.bias, step.residual].compactMap { $0 }
        }
    }

    var workspaceBytes: Int {
        switch self {
        case .matMul(let runner, _): runner.workspaceBytes
        case .convolution(let runner, _): runner.workspaceBytes
        }
    }

    /// The call with one context's operand addresses and workspace.
    /// A chosen kernel runs in place of the library unless an operand is off a 16-byte boundary (a view the
    /// kernel cannot take), where the library's first candidate, kept set up, runs.
    func bind(resolve: (CUDAOperand) throws -> UInt64, workspace: CUDAWorkspace) throws -> any CUDALibraryCall {
        if let kernel, CUDASplitProduct.aligned(try operands.map(resolve)) {
            return KernelCall(launch: try kernel.launch.prepare(kernel.function, resolve: resolve))
        }
        switch self {
        case .matMul(let runner, let step):
            return MatMulCall(
                runner: runner, a: try resolve(step.a), b: try resolve(step.b), c: try step.c.map(resolve) ?? 0,
                bias: try step.bias.map(resolve) ?? 0, d: try resolve(step.d), workspace: workspace)
        case .convolution(let runner, let step):
            return ConvolutionCall(
                runner: runner, x: try resolve(step.x), w: try resolve(step.w), bias: try step.bias.map(resolve) ?? 0,
                residual: try step.residual.map(resolve) ?? 0, y: try resolve(step.y), workspace: workspace)
        }
    }
}

private struct MatMulCall: CUDALibraryCall {
    let runner: CUDAMatMulRunner
    let a, b, c, bias, d: UInt64
    let workspace: CUDAWorkspace

    func enqueue(on stream: CUDAStream) throws {
        try runner.enqueue(
            a: a, b: b, c: c, bias: bias, d: d, workspace: workspace.address, stream: stream.handle)
    }
}

/// One of Kiln's own kernels chosen for a library step (`CUDALibraryRunner.kernel`).
private struct KernelCall: CUDALibraryCall {
    let launch: PreparedLaunch

    func enqueue(on stream: CUDAStream) throws { try launch.enqueue(on: stream) }
}

private struct ConvolutionCall: CUDALibraryCall {
    let runner: CUDAConvolutionRunner
    let x, w, bias, residual, y: UInt64
    let workspace: CUDAWorkspace

    func enqueue(on stream: CUDAStream) throws {
        try runner.enqueue(
            x: x, w: w, bias: bias, residual: residual, y: y, workspace: workspace.address, stream: stream.handle)
    }
}
