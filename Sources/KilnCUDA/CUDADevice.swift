import Foundation
import KilnCPU
import KilnIR
import KilnRuntime

/// How the CUDA backend builds and runs engines.
public struct CUDADeviceOptions: Sendable, Hashable {
    /// Kernel choices that change numerics (TF32).
    public var kernels: CUDAOptions
    /// Run layers the GPU cannot on the CPU (copying their data across) instead of refusing to build.
    public var allowCPUFallback: Bool
    /// Replay each shape's launches as one CUDA graph after the first run (off when a layer falls back).
    public var useCUDAGraphs: Bool
    /// Optimizer passes left out when a graph is specialized to its input shapes (as `BuilderConfig` says).
    public var disabledPasses: Set<String>

    public init(
        kernels: CUDAOptions = .init(), allowCPUFallback: Bool = false, useCUDAGraphs: Bool = false,
        disabledPasses: Set<String> = []
    ) {
        self.kernels = kernels
        self.allowCPUFallback = allowCPUFallback
        self.useCUDAGraphs = useCUDAGraphs
        self.disabledPasses = disabledPasses
    }
}

/// One NVIDIA GPU. Engines built for it keep weights and activations in device memory and run every layer as
/// CUDA kernels (Kiln's own, compiled by NVRTC for this GPU's architecture, or cuBLASLt and cuDNN calls).
/// Graphs are compiled per input shape on first use; the optimizer's constant folding runs on the CPU.
public final class CUDADevice: Device {
    public let properties: DeviceProperties
    public let options: CUDADeviceOptions
    let context: CUDAContext
    let modules: CUDAModuleCache
    let libraries: CUDALibraries
    /// Evaluates folded constants and runs fallback layers.
    let host: CPUDevice
    /// Weights and derived constants are copied on this one stream, not a new stream per tensor.
    let uploadStream: CUDAStream
    /// Page-locked host memory for outputs and `pinnedCopy(of:)`.
    let pinned: PinnedPool

    /// Opens GPU `ordinal`. Throws `unsupported` with one clear line when there is no driver or GPU.
    public init(ordinal: Int = 0, options: CUDADeviceOptions = .init()) throws {
        context = try CUDAContext.open(ordinal: ordinal)
        modules = CUDAModuleCache(context: context)
        libraries = try CUDALibraries(context: context, modules: modules)
        uploadStream = try context.makeStream()
        pinned = PinnedPool(context: context)
        host = CPUDevice(options: .untuned)
        self.options = options
        let memory = Double(context.totalMemory) / Double(1 << 30)
        properties = DeviceProperties(
            name: "\(context.name) (sm_\(context.computeCapability), \(String(format: "%.0f", memory)) GiB)",
            kind: "cuda", threads: host.properties.threads)
    }

    public func supports(_ node: Node) -> Bool { CUDALoweringRegistry.all[node.kind] != nil }

    public func runsInHalfPrecision(_ node: Node, dtype: DType) -> Bool {
        CUDAHalfPrecision.runs(node, dtype: dtype, architecture: context.computeCapability)
    }

    public func runsChannelsLast(_ node: Node, input: TensorType) -> Bool {
        // A chained int8 convolution's only kernel is channels-last (`chainsInt8` chose it for that kernel).
        if let conv = node.layer as? QuantizedConvolutionLayer { return conv.writesQuantized }
        // An int8 max pool sits in a chain (`Int8Chaining`); its kernel is the channels-last one.
        if input.dtype == .int8, let pool = node.layer as? PoolLayer { return pool.op == .max && pool.window != nil }
        return CUDAHalfPrecision.runsChannelsLast(
            node, input: input, architecture: context.computeCapability, tf32: options.kernels.allowTF32)
    }

    /// A chained int8 convolution over few channels (a stem) on the direct stem kernel loads the quantized image
    /// channels-first as it stages each tile's window: on ResNet-50 at batch 64 that saves the transpose in front
    /// of the stem (BENCHMARKS.md).
    public func readsChannelsFirst(_ node: Node, input: TensorType, weights: TensorType) -> Bool {
        CUDAInt8WarpGroupConvolution.takesChannelsFirst(node, input: input, weights: weights)
    }

    /// Float32 products where Kiln's split-TF32 kernel has its warpgroup form (Hopper, TF32 off), which takes B
    /// only as `[N, K]`: on BERT-base's and ViT-B/16's projections at batch 64 it ran 1.4-1.5x faster than
    /// cuBLAS strict float32 (`bench/kernels/split_product.py`, H100). Timing still chooses among both.
    public func takesWeightRows(_ node: Node, dtype: DType) -> Bool {
        let architecture = context.computeCapability
        return node.layer is MatMulLayer && CUDASplitProduct.hasWarpGroupForm(architecture: architecture)
            && CUDASplitProduct.runs(dtype, allowTF32: options.kernels.allowTF32, architecture: architecture)
    }

    /// Float32 1×1 convolutions reading the channels-first output of a layer outside a channels-last region
    /// (ResNet's stride-1 3×3 convolutions on Hopper) where the split-TF32 kernel's warpgroup form reads such
    /// an input as it is: on ResNet-50's three such shapes at batch 64 it ran as fast as on rows, so the
    /// transpose before it goes (`bench/kernels/split_product.py`, H100). Timing still chooses the tactic.
    public func takesTransposedInput(_ node: Node, input: TensorType, outputChannels: Int) -> Bool {
        guard let shape = input.shape, shape.count == 4, let c = shape[1].value, let h = shape[2].value,
            let w = shape[3].value
        else { return false }
        return CUDASplitProduct.takesColumns(
            pixels: h * w, channels: c, outputs: outputChannels, dtype: input.dtype,
            allowTF32: options.kernels.allowTF32, architecture: context.computeCapability)
    }

    /// 2-D int8 convolutions Kiln's warpgroup kernel runs (Hopper): on ResNet-50's shapes at batch 64 it ran
    /// 1.26x faster than cuDNN's float16 convolution over the network (`bench/kernels/int8_conv.py`, H100),
    /// and chained it moves a byte per activation.
    public func chainsInt8(_ node: Node, input: TensorType, weights: TensorType) -> Bool {
        CUDAInt8WarpGroupConvolution.takes(
            node, input: input, weights: weights, architecture: context.computeCapability,
            im2col: context.hasIm2colTensorMaps)
    }

    /// Only chained int8 convolutions: an unchained int8 layer quantizes its float input, multiplies and
    /// finishes in float32 in three kernels, where the 16-bit layer is one tensor-core kernel with its epilogue.
    /// ResNet-50 at batch 64 (H100): unchained int8 10.5 ms against float16 2.02; MobileNetV2, whose 1×1
    /// convolutions mostly do not chain, 4.91 ms in int8 and 5.44 in int8 + float16 with every quantizable
    /// layer int8, against 1.42 in float16 (BENCHMARKS.md, "int8 and float16 in one engine").
    public func int8Beats(_ node: Node, input: TensorType, weights: TensorType, half: DType, chained: Bool) -> Bool {
        chained && node.layer is ConvolutionLayer && chainsInt8(node, input: input, weights: weights)
    }

    /// Host kernels, for constant folding at build time; the engine itself runs on the GPU (`compile`).
    public func makeKernel(_ node: Node, subgraphs: any SubgraphCompiler) throws -> any Kernel {
        try host.makeKernel(node, subgraphs: subgraphs)
    }

    public func compile(_ graph: Graph) throws -> any GraphExecutable {
        try CUDAProgram(graph: graph, device: self)
    }

    /// A copy in page-locked memory, which uploads run from at the bus's full speed.
    public func pinnedCopy(of tensor: Tensor) throws -> Tensor {
        guard tensor.dtype != .string else { return tensor }
        let storage = try pinned.storage(byteCount: tensor.byteCount)
        if tensor.byteCount > 0 { storage.bytes.copyMemory(from: tensor.storage.bytes, byteCount: tensor.byteCount) }
        return Tensor(dtype: tensor.dtype, shape: tensor.shape, storage: storage)
    }

    /// Plans run where the compute capability is the same (their cubins are for it).
    public var fingerprint: DeviceFingerprint {
        let nvrtc = (try? NVRTC.shared()).map { "NVRTC \($0.version.major).\($0.version.minor)" } ?? "no NVRTC"
        return DeviceFingerprint(
            kind: "cuda", name: context.name, architecture: "sm_\(context.computeCapability)",
            software: "driver \(context.driverVersion / 1000).\(context.driverVersion % 1000 / 10), \(nvrtc)")
    }

    public var tactics: [String: String] { libraries.tactics }

    public func preloadTactics(_ tactics: [String: String]) { libraries.preload(tactics) }

    public func preload(_ code: [CompiledCode]) throws {
        modules.preload(code.map { ($0.name, $0.bytes) })
    }

    /// Device memory in use and in total, in bytes (all processes).
    public func memoryInfo() throws -> (free: Int, total: Int) { try context.memoryInfo() }
    /// Device memory this device object holds now (arenas, weights, workspaces), by its own count.
    public var liveDeviceBytes: Int { context.liveBytes }
}
