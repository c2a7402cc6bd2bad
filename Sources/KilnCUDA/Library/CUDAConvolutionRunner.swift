import Foundation
import KilnIR

/// Runs one `CUDAConvolution` step with cuDNN's legacy API: `y = relu?(conv(x, w) + bias + residual)`.
///
/// With a bias and ReLU it is one `cudnnConvolutionBiasActivationForward` (the residual as its `z` input); every
/// other combination is `cudnnConvolutionForward` then `cudnnAddTensor` for the bias and the residual, then
/// `cudnnActivationForward` for ReLU. cuDNN's fused call takes only RELU or IDENTITY, and IDENTITY only with
/// IMPLICIT_PRECOMP_GEMM, so the fused path is used for ReLU only. Other activations are not this runner's
/// job: the lowering launches its own epilogue kernel after the step.
///
/// Math: strict float32 uses CUDNN_FMA_MATH, because CUDNN_DEFAULT_MATH lets cuDNN run float32 as TF32 on
/// Ampere and newer; `allowTF32` uses CUDNN_TENSOR_OP_MATH (never ..._ALLOW_CONVERSION, which may go to FP16).
///
/// Thread safety: the `CUDNN` handle is not thread-safe; `enqueue` holds the handle's lock from `cudnnSetStream`
/// to its last call, so runners sharing one `CUDNN` may be used from several threads.
public final class CUDAConvolutionRunner: @unchecked Sendable {
    public let step: CUDAConvolution
    /// Bytes of device workspace `enqueue` needs.
    public internal(set) var workspaceBytes: Int
    /// The cudnnConvolutionFwdAlgo_t chosen: the heuristics' first, or the fastest `tune` measured.
    public internal(set) var algorithm: Int32
    /// The algorithms the heuristics offered that qualify (math, workspace), in their order.
    let candidates: [(algorithm: Int32, math: Int32)]
    let dnn: CUDNN
    let owned: Resources
    let fused: Bool
    let requestedMath: Int32
    /// Set when cuDNN answered NOT_SUPPORTED to the fused call, so later calls go straight to the unfused path.
    var fusedRefused = false
    /// Kiln's own kernels for this convolution, timed beside cuDNN's algorithms; a choice of the i-th is
    /// remembered as algorithm −1 − i.
    let kernels: CUDAKernelTactics<CUDAConvolution>
    /// The kernel chosen instead of a cuDNN algorithm: its launch for `step` and its function.
    public internal(set) var kernel: (launch: CUDALaunch, function: CUDAFunction)?
    private var kernelIndex: Int?
    /// What runs, as a tactic: cuDNN's algorithm, or −1 − i for Kiln's kernel i.
    var choice: Int { kernelIndex.map { -1 - $0 } ?? Int(algorithm) }

    /// Creates the descriptors and picks the first algorithm from `cudnnGetConvolutionForwardAlgorithm_v7` that
    /// succeeds, fits `maxWorkspaceBytes`, and (strict mode) uses FMA math. Throws `unsupported` for non-float32,
    /// spatial rank other than 2 or 3, activations other than ReLU, or when no algorithm qualifies.
    public init(
        step: CUDAConvolution, library: CUDNN, allowTF32: Bool, maxWorkspaceBytes: Int = 256 << 20,
        kernels: CUDAKernelTactics<CUDAConvolution> = .none
    ) throws {
        self.step = step
        self.kernels = kernels
        dnn = library
        let dnn = library
        // float16 and bfloat16 run in cuDNN's pseudo-half configuration: data in the 16-bit type, arithmetic
        // (the convolution descriptor's compute type) in float32, on tensor cores.
        guard let dataType = CUDNN.dataType(step.dtype) else {
            throw KilnError.unsupported(
                "cuDNN convolution runner handles float32, float16 and bfloat16, not \(step.dtype.onnxName)")
        }
        let rank = step.inputShape.count
        let spatial = rank - 2
        guard rank == 4 || rank == 5, step.weightShape.count == rank, step.outputShape.count == rank,
            step.pads.count == spatial, step.strides.count == spatial, step.dilations.count == spatial
        else {
            throw KilnError.unsupported("cuDNN convolution needs 4-D or 5-D NCHW tensors, got \(step.inputShape)")
        }
        switch step.activation {
        case nil, .relu?: break
        case let other?:
            throw KilnError.unsupported("cuDNN convolution runner applies only relu, not \(other)")
        }
        let all = step.inputShape + step.weightShape + step.outputShape + step.pads + step.strides + step.dilations
        guard all.allSatisfy({ $0 >= 0 && $0 <= Int(Int32.max) }), step.groups > 0 else {
            throw KilnError.unsupported("cuDNN convolution sizes exceed int32: \(step.inputShape)")
        }
        if let strides = step.outputStrides, strides.count != rank || step.residual != nil {
            throw KilnError.unsupported(
                "cuDNN convolution writing Y with strides \(strides): rank \(rank), no residual")
        }
        let owned = Resources(library, dataType: dataType, channelsLast: step.channelsLast)
        self.owned = owned
        let x = try owned.tensor(step.inputShape)
        let y = try owned.tensor(step.outputShape, strides: step.outputStrides)
        owned.x = x
        owned.y = y
        var biasShape = [Int](repeating: 1, count: rank)
        biasShape[1] = step.outputShape[1]
        owned.bias = step.bias == nil ? nil : try owned.tensor(biasShape, channelsLast: false)

        var w: OpaquePointer?
        try dnn.check(dnn.createFilterDescriptor(&w), "cudnnCreateFilterDescriptor")
        owned.w = w
        let weightDims = step.weightShape.map { Int32($0) }
        try dnn.check(
            dnn.setFilterNd(
                w, dataType, step.channelsLast ? CUDNN.formatNHWC : CUDNN.formatNCHW, Int32(rank), weightDims),
            "cudnnSetFilterNdDescriptor")

        var conv: OpaquePointer?
        try dnn.check(dnn.createConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor")
        owned.conv = conv
        try dnn.check(
            dnn.setConvolutionNd(
                conv, Int32(spatial), step.pads.map { Int32($0) }, step.strides.map { Int32($0) },
                step.dilations.map { Int32($0) }, CUDNN.crossCorrelation, CUDNN.dataFloat),
            "cudnnSetConvolutionNdDescriptor")
        try dnn.check(dnn.setConvolutionGroupCount(conv, Int32(step.groups)), "cudnnSetConvolutionGroupCount")
        let strict = step.dtype == .float32 && !allowTF32
        let math = strict ? CUDNN.fmaMath : CUDNN.tensorOpMath
        try dnn.check(dnn.setConvolutionMathType(conv, math), "cudnnSetConvolutionMathType")

        var expected = [Int32](repeating: 0, count: rank)
        try dnn.check(dnn.outputDim(conv, x, w, Int32(rank), &expected), "cudnnGetConvolutionNdForwardOutputDim")
        guard expected.map({ Int($0) }) == step.outputShape else {
            throw KilnError.shapeMismatch("cuDNN computes output \(expected) for a step that says \(step.outputShape)")
        }

        candidates = try Self.qualifyingAlgorithms(dnn, owned, conv: conv, strict: strict, limit: maxWorkspaceBytes)
        requestedMath = math
        algorithm = candidates[0].algorithm
        workspaceBytes = 0

        if step.activation == .relu {
            var activation: OpaquePointer?
            try dnn.check(dnn.createActivationDescriptor(&activation), "cudnnCreateActivationDescriptor")
            owned.activation = activation
            // PROPAGATE_NAN keeps NaN as NaN, like the reference ReLU (NaN < 0 is false).
            try dnn.check(
                dnn.setActivationDescriptor(activation, CUDNN.activationRelu, CUDNN.propagateNaN, 0),
                "cudnnSetActivationDescriptor")
        }
        fused = step.bias != nil && step.activation == .relu
        try choose(0)
    }

    /// Makes candidate `index` the algorithm `enqueue` runs, with the math type the heuristics reported for it.
    func choose(_ index: Int) throws {
        let choice = candidates[min(max(index, 0), candidates.count - 1)]
        try dnn.check(dnn.setConvolutionMathType(owned.conv, choice.math), "cudnnSetConvolutionMathType")
        var bytes = 0
        try dnn.check(
            dnn.forwardWorkspaceSize(dnn.handle, owned.x, owned.w, owned.conv, owned.y, choice.algorithm, &bytes),
            "cudnnGetConvolutionForwardWorkspaceSize")
        algorithm = choice.algorithm
        workspaceBytes = bytes
        fusedRefused = false
        kernel = nil
        kernelIndex = nil
    }

    /// Makes Kiln's kernel `index` what runs, cuDNN's first candidate set up beside it for operands the kernel
    /// cannot take; false when there is no such kernel or it does not load.
    func chooseKernel(_ index: Int) throws -> Bool {
        guard let chosen = kernels.chosen(index, for: step) else { return false }
        try choose(0)
        kernel = chosen
        kernelIndex = index
        return true
    }

    /// Every algorithm of `cudnnGetConvolutionForwardAlgorithm_v7` that succeeds, fits `limit`, and (strict mode)
    /// uses FMA math, in the heuristics' order; at least one, or `unsupported`.
    private static func qualifyingAlgorithms(
        _ dnn: CUDNN, _ owned: Resources, conv: OpaquePointer?, strict: Bool, limit: Int
    ) throws -> [(algorithm: Int32, math: Int32)] {
        let count = CUDNN.forwardAlgorithmCount
        let perf = UnsafeMutableRawPointer.allocate(byteCount: CUDNN.perfBytes * count, alignment: 16)
        defer { perf.deallocate() }
        perf.initializeMemory(as: UInt8.self, repeating: 0, count: CUDNN.perfBytes * count)
        var returned: Int32 = 0
        try dnn.check(
            dnn.forwardAlgorithmV7(dnn.handle, owned.x, owned.w, conv, owned.y, Int32(count), &returned, perf),
            "cudnnGetConvolutionForwardAlgorithm_v7")
        var seen: [String] = []
        var qualifying: [(algorithm: Int32, math: Int32)] = []
        for i in 0..<min(Int(returned), count) {
            let base = i * CUDNN.perfBytes
            let status = perf.load(fromByteOffset: base + CUDNN.perfStatusOffset, as: Int32.self)
            let memory = perf.load(fromByteOffset: base + CUDNN.perfMemoryOffset, as: Int.self)
            let math = perf.load(fromByteOffset: base + CUDNN.perfMathTypeOffset, as: Int32.self)
            let algorithm = perf.load(fromByteOffset: base + CUDNN.perfAlgoOffset, as: Int32.self)
            seen.append("algo \(algorithm) status \(status) math \(math) memory \(memory)")
            guard status == CUDNN.success, memory <= limit else { continue }
            if strict && math != CUDNN.fmaMath { continue }
            if math == CUDNN.tensorOpMathAllowConversion { continue }
            qualifying.append((algorithm, math))
        }
        if !qualifying.isEmpty { return qualifying }
        throw KilnError.unsupported(
            "cuDNN has no \(strict ? "FMA-math " : "")forward algorithm within \(limit) bytes; heuristics gave: "
                + seen.joined(separator: "; "))
    }

    /// The descriptors one runner created, destroyed together (also when `init` throws half-way).
    final class Resources {
        let dnn: CUDNN
        /// The cudnnDataType_t of every tensor and the filter.
        let dataType: Int32
        /// Tensors stored with the channels innermost (NHWC); their dimensions are still given NCHW.
        let channelsLast: Bool
        var tensors: [OpaquePointer] = []
        var x: OpaquePointer?
        var y: OpaquePointer?
        var bias: OpaquePointer?
        var w: OpaquePointer?
        var conv: OpaquePointer?
        var activation: OpaquePointer?

        init(_ dnn: CUDNN, dataType: Int32, channelsLast: Bool) {
            self.dnn = dnn
            self.dataType = dataType
            self.channelsLast = channelsLast
        }

        deinit {
            for t in tensors { _ = dnn.destroyTensorDescriptor(t) }
            if let w { _ = dnn.destroyFilterDescriptor(w) }
            if let conv { _ = dnn.destroyConvolutionDescriptor(conv) }
            if let activation { _ = dnn.destroyActivationDescriptor(activation) }
        }

        /// A tensor descriptor of `dataType` elements for the NCHW `shape`: dense, stored NCHW or (with
        /// `channelsLast`, the runner's layout by default) NHWC, or with the given element `strides`.
        func tensor(_ shape: [Int], channelsLast: Bool? = nil, strides given: [Int]? = nil) throws -> OpaquePointer {
            var desc: OpaquePointer?
            try dnn.check(dnn.createTensorDescriptor(&desc), "cudnnCreateTensorDescriptor")
            guard let desc else { throw KilnError.runtime("cudnn cudnnCreateTensorDescriptor returned nil") }
            tensors.append(desc)
            var strides = [Int32](repeating: 1, count: shape.count)
            var running = 1
            // Innermost first: the channels, then the spatial axes, then the batch when channels-last.
            let order =
                channelsLast ?? self.channelsLast
                ? [1] + Array((2..<shape.count).reversed()) + [0] : Array(shape.indices.reversed())
            for axis in order {
                let stride = given?[axis] ?? running
                guard stride <= Int(Int32.max), running <= Int(Int32.max) else {
                    throw KilnError.unsupported("cuDNN tensor \(shape) has strides beyond int32")
                }
                strides[axis] = Int32(stride)
                running *= max(shape[axis], 1)
            }
            try dnn.check(
                dnn.setTensorNd(desc, dataType, Int32(shape.count), shape.map { Int32($0) }, strides),
                "cudnnSetTensorNdDescriptor")
            return desc
        }
    }

    /// Enqueues the convolution and its epilogue on `stream` (a CUstream). Pass 0 for `bias`/`residual` when the
    /// step has none; `workspace` must hold `workspaceBytes`. `residual` may not alias `y` unless they are equal.
    public func enqueue(
        x: UInt64, w: UInt64, bias: UInt64, residual: UInt64, y: UInt64, workspace: UInt64, stream: OpaquePointer?
    ) throws {
        guard x != 0, w != 0, y != 0, step.bias == nil || bias != 0, step.residual == nil || residual != 0 else {
            throw KilnError.invalidArgument("cuDNN convolution: a required device address is 0")
        }
        guard workspaceBytes == 0 || workspace != 0 else {
            throw KilnError.invalidArgument("cuDNN convolution needs \(workspaceBytes) bytes of workspace")
        }
        dnn.lock.lock()
        defer { dnn.lock.unlock() }
        try dnn.check(dnn.setStream(dnn.handle, stream), "cudnnSetStream")
        var one: Float = 1
        var zero: Float = 0
        let p = libraryDevicePointer
        let (xd, yd, wd, conv) = (owned.x, owned.y, owned.w, owned.conv)
        if fused && !fusedRefused {
            let hasResidual = step.residual != nil
            var alpha2: Float = hasResidual ? 1 : 0
            let z = hasResidual ? residual : y
            let status = dnn.biasActivationForward(
                dnn.handle, &one, xd, p(x), wd, p(w), conv, algorithm, p(workspace), workspaceBytes, &alpha2, yd,
                p(z), owned.bias, p(bias), owned.activation, yd, p(y))
            if !CUDNN.notSupported.contains(status) {
                try dnn.check(status, "cudnnConvolutionBiasActivationForward")
                return
            }
            // Not supported for this configuration: the unfused sequence below gives the same result.
            fusedRefused = true
        }
        try dnn.check(
            dnn.convolutionForward(
                dnn.handle, &one, xd, p(x), wd, p(w), conv, algorithm, p(workspace), workspaceBytes, &zero, yd, p(y)),
            "cudnnConvolutionForward")
        if step.bias != nil {
            try dnn.check(dnn.addTensor(dnn.handle, &one, owned.bias, p(bias), &one, yd, p(y)), "cudnnAddTensor(bias)")
        }
        if step.residual != nil {
            try dnn.check(dnn.addTensor(dnn.handle, &one, yd, p(residual), &one, yd, p(y)), "cudnnAddTensor(residual)")
        }
        if step.activation == .relu {
            try dnn.check(
                dnn.activationForward(dnn.handle, owned.activation, &one, yd, p(y), &zero, yd, p(y)),
                "cudnnActivationForward")
        }
    }
}
