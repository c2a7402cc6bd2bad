import Foundation
import KilnIR
import KilnRuntime

/// A buffer one step reads or writes, named relative to the node being lowered: one of its inputs or outputs,
/// scratch memory the lowering asked for, or a constant tensor the lowering derived (e.g. repacked weights).
/// The executor turns operands into device addresses; lowerings never see memory.
public enum CUDAOperand: Hashable, Sendable {
    case input(Int)
    case output(Int)
    case scratch(Int)
    case constant(Int)
}

/// One argument of a kernel launch, in the order of the CUDA C function's parameters.
public enum CUDAArgument: Sendable, Hashable {
    /// A device pointer to the operand's first byte plus `offset` bytes.
    case pointer(CUDAOperand, offset: Int)
    case int32(Int32)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    /// Up to `KilnDims.capacity` sizes or strides, passed by value as the prelude's `KilnDims` struct.
    case dims([Int])
    /// A TMA tensor map of a matrix (or an im2col map of an NHWC tensor), encoded when the operand's address is
    /// known (128 bytes, passed by value as a `__grid_constant__` parameter).
    case tensorMap(CUDATensorMap)

    public static func pointer(_ operand: CUDAOperand) -> CUDAArgument { .pointer(operand, offset: 0) }
    public static func int(_ value: Int) -> CUDAArgument { .int64(Int64(value)) }
}

/// A 2-D view of a row-major matrix of 16-bit or 8-bit elements for the tensor memory accelerator
/// (`cuTensorMapEncodeTiled`): `rows` x `columns` elements, `rowStride` elements apart, copied in boxes of
/// `boxRows` x `boxColumns` into shared memory with a `swizzleBytes` swizzle (128 or 64: a box row is at most
/// that many bytes); what lies past the edges reads as zeros.
///
/// With a `window`, the matrix is an NHWC tensor's pixels (rows) by channels (columns) and the map is an im2col
/// map (`cuTensorMapEncodeIm2col`): a load takes `boxRows` consecutive output pixels of the window's
/// convolution, `boxColumns` channels each, from under one filter tap given with the load, zeros in the padding.
public struct CUDATensorMap: Sendable, Hashable {
    public var operand: CUDAOperand
    public var dtype: DType
    public var rows: Int
    public var columns: Int
    public var rowStride: Int
    public var boxRows: Int
    public var boxColumns: Int
    public var swizzleBytes: Int
    public var window: CUDAIm2colWindow?

    public init(
        _ operand: CUDAOperand, dtype: DType, rows: Int, columns: Int, rowStride: Int, boxRows: Int, boxColumns: Int,
        swizzleBytes: Int = 128, window: CUDAIm2colWindow? = nil
    ) {
        self.operand = operand
        self.dtype = dtype
        self.rows = rows
        self.columns = columns
        self.rowStride = rowStride
        self.boxRows = boxRows
        self.boxColumns = boxColumns
        self.swizzleBytes = swizzleBytes
        self.window = window
    }
}

/// The 2-D convolution an im2col tensor map walks over an NHWC tensor `[images, height, width, channels]`;
/// `kernel`, `strides`, `padsBegin`, `padsEnd` and `dilations` are (height, width).
public struct CUDAIm2colWindow: Sendable, Hashable {
    public var images: Int
    public var height: Int
    public var width: Int
    public var kernel: [Int]
    public var strides: [Int]
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var dilations: [Int]

    /// The output's height and width.
    public var output: [Int] {
        (0..<2).map { i in
            let extent = [height, width][i] + padsBegin[i] + padsEnd[i] - dilations[i] * (kernel[i] - 1) - 1
            return extent / strides[i] + 1
        }
    }

    /// The corners of the box the window's top-left tap walks, relative to the tensor's edges, in the tensor
    /// map's order (width, then height): `-padsBegin` and `padsEnd` less the kernel's dilated extent.
    var lowerCorner: [Int] { [-padsBegin[1], -padsBegin[0]] }
    var upperCorner: [Int] { [1, 0].map { padsEnd[$0] - dilations[$0] * (kernel[$0] - 1) } }

    /// Whether the corners fit a 4-D im2col map ([-128, 127] each).
    var cornersFit: Bool { (lowerCorner + upperCorner).allSatisfy { (-128...127).contains($0) } }
}

/// Grid or block size.
public struct CUDADim3: Sendable, Hashable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var z: Int

    public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
        self.x = x
        self.y = y
        self.z = z
    }

    public var description: String { "\(x)x\(y)x\(z)" }
}

/// CUDA C source for one module, compiled by NVRTC for the device's architecture. Two lowerings that emit the
/// same code share one compiled module, so sources should depend on dtypes and operators, not on shapes
/// (pass sizes as arguments).
public struct CUDASource: Sendable, Hashable {
    /// A short readable name for logs and compile errors (`pointwise_add_f32`).
    public var name: String
    /// The whole translation unit; `CUDAPrelude.text` is prepended by the compiler, not here.
    public var code: String
    /// Compiled for the architecture-specific target (`sm_90a`), whose instructions (wgmma) run on that
    /// architecture only.
    public var architectureSpecific: Bool

    public init(name: String, code: String, architectureSpecific: Bool = false) {
        self.name = name
        self.code = code
        self.architectureSpecific = architectureSpecific
    }

    /// The name its cubin has in a plan file: readable, and the same in every process for the same code.
    public var planName: String { "\(name).\(StableHash.of(code).hex)" }
}

/// A launch of one `extern "C" __global__` function of a module.
public struct CUDALaunch: Sendable, Hashable {
    public var source: CUDASource
    public var function: String
    public var grid: CUDADim3
    public var block: CUDADim3
    public var sharedBytes: Int
    public var arguments: [CUDAArgument]

    public init(
        source: CUDASource, function: String, grid: CUDADim3, block: CUDADim3, sharedBytes: Int = 0,
        arguments: [CUDAArgument]
    ) {
        self.source = source
        self.function = function
        self.grid = grid
        self.block = block
        self.sharedBytes = sharedBytes
        self.arguments = arguments
    }
}

/// A device-to-device copy of `bytes` bytes.
public struct CUDACopy: Sendable, Hashable {
    public var destination: CUDAOperand
    public var destinationOffset: Int
    public var source: CUDAOperand
    public var sourceOffset: Int
    public var bytes: Int

    public init(
        destination: CUDAOperand, destinationOffset: Int = 0, source: CUDAOperand, sourceOffset: Int = 0,
        bytes: Int
    ) {
        self.destination = destination
        self.destinationOffset = destinationOffset
        self.source = source
        self.sourceOffset = sourceOffset
        self.bytes = bytes
    }
}

/// One unit of device work, in stream order.
public enum CUDAStep: Sendable {
    case launch(CUDALaunch)
    case matMul(CUDAMatMul)
    case convolution(CUDAConvolution)
    case copy(CUDACopy)
}

/// What a node becomes on the GPU: steps run in order on one stream.
public struct CUDALowering: Sendable {
    public var steps: [CUDAStep]
    /// Size in bytes of each `.scratch(i)` buffer; scratch lives only while the node runs.
    public var scratchBytes: [Int]
    /// Tensors uploaded once when the engine is built; `.constant(i)` refers to `constants[i]`.
    public var constants: [Tensor]
    /// Output index -> input index for outputs that are the input's bytes under another shape (reshape,
    /// flatten, squeeze): no copy, no steps.
    public var aliases: [Int: Int]
    /// For an aliased output: where its bytes start inside the input's, in bytes (0 when absent). A contiguous
    /// block of the input, such as `Gather(axis 0, constant index)`, is a view too.
    public var aliasOffsets: [Int: Int]
    /// Input index -> where, in bytes inside output 0, that input may be stored from the moment it is produced
    /// (a concat whose inputs are contiguous blocks of its output). The memory layout stores each input there
    /// that it can (`CUDAMemoryLayout`); the `.copy` step of such an input then has nothing to do and is left out.
    public var placements: [Int: Int]
    /// Output index -> input index whose bytes the output may take when nothing reads that input afterwards
    /// (a pointwise kernel reading each element before writing it, operands of one size): the memory layout
    /// decides (`CUDAMemoryLayout`).
    public var inPlace: [Int: Int]
    /// Step index -> launches that compute exactly what that step's launch does (the same bytes: tile shapes
    /// of an integer product), the step's own first; the builder times them and keeps the fastest.
    public var alternatives: [Int: CUDALaunchChoice]
    /// The steps write output 0 into the node's `CUDANodeInfo.outputSlot`, not densely: the memory layout
    /// must then store it inside the concat's output that offered the slot.
    public var writesSlot = false

    public init(
        steps: [CUDAStep] = [], scratchBytes: [Int] = [], constants: [Tensor] = [], aliases: [Int: Int] = [:],
        aliasOffsets: [Int: Int] = [:], placements: [Int: Int] = [:], inPlace: [Int: Int] = [:],
        alternatives: [Int: CUDALaunchChoice] = [:]
    ) {
        self.inPlace = inPlace
        self.steps = steps
        self.scratchBytes = scratchBytes
        self.constants = constants
        self.aliases = aliases
        self.aliasOffsets = aliasOffsets
        self.placements = placements
        self.alternatives = alternatives
    }

    public init(_ steps: CUDAStep...) { self.init(steps: steps) }
}

/// Kiln's kernels that do one step's work, to time against each other.
public struct CUDALaunchChoice: Sendable {
    /// Names the layer's sizes and parameters: where the timing cache keeps the choice (an index into
    /// `launches`).
    public var signature: String
    public var launches: [CUDALaunch]

    public init(signature: String, launches: [CUDALaunch]) {
        self.signature = signature
        self.launches = launches
    }
}

/// Build options that change which kernels are correct to use.
public struct CUDAOptions: Sendable, Hashable {
    /// Let float32 matrix products and convolutions use TF32 tensor cores (about 1e-3 relative error).
    public var allowTF32: Bool
    /// Time the library algorithms the heuristics offer on the real sizes and keep the fastest (cuBLASLt);
    /// off, the heuristics' first choice runs.
    public var tuneLibraries: Bool
    /// How many of the heuristics' algorithms are timed (when tuning).
    public var tacticCandidates: Int
    /// The build budget: after this moment nothing more is timed (known choices still apply).
    public var tuningDeadline: Date?

    public init(allowTF32: Bool = false, tuneLibraries: Bool = true, tacticCandidates: Int = 8) {
        self.allowTF32 = allowTF32
        self.tuneLibraries = tuneLibraries
        self.tacticCandidates = tacticCandidates
    }

    /// The builder's optimization level: 0 times nothing (the heuristics' first choice), 1-5 time 2, 4, 8,
    /// 16 and 32 candidates per layer; 3 is the default.
    public init(allowTF32: Bool, level: Int) {
        self.init(
            allowTF32: allowTF32, tuneLibraries: level > 0, tacticCandidates: 1 << min(max(level, 1), 5))
    }
}

/// What a lowering knows about one node: its layer and every input and output type, all shapes concrete
/// (the executor specializes the graph to the shapes of the inputs before lowering).
public struct CUDANodeInfo: Sendable {
    public let node: Node
    /// nil for an omitted optional input.
    public let inputs: [TensorType?]
    public let outputs: [TensorType]
    /// The value of each input that is a constant (an initializer), else nil.
    public let constants: [Tensor?]
    /// Compute capability as major * 10 + minor (90 on Hopper).
    public let architecture: Int
    /// The device's streaming multiprocessors (what persistent kernels size their grid by); 0 when unknown.
    public let multiprocessors: Int
    public let options: CUDAOptions
    /// Where output 0 may be written instead of bytes of its own (a concat's columns, `CUDAOutputSlot`); a
    /// lowering that writes it there says so (`CUDALowering.writesSlot`), any other ignores it.
    public var outputSlot: CUDAOutputSlot?
    /// For a concat: the inputs their producers already wrote into its output (nothing to copy).
    public var placedInputs: Set<Int> = []

    public init(
        node: Node, inputs: [TensorType?], outputs: [TensorType], constants: [Tensor?], architecture: Int,
        multiprocessors: Int = 0, options: CUDAOptions, outputSlot: CUDAOutputSlot? = nil
    ) {
        self.outputSlot = outputSlot
        self.node = node
        self.inputs = inputs
        self.outputs = outputs
        self.constants = constants
        self.architecture = architecture
        self.multiprocessors = multiprocessors
        self.options = options
    }

    public var inputCount: Int { inputs.count }
    public func hasInput(_ index: Int) -> Bool { index < inputs.count && inputs[index] != nil }

    /// Input `index`'s type; throws when it is absent.
    public func input(_ index: Int) throws -> TensorType {
        guard index < inputs.count, let type = inputs[index] else {
            throw KilnError.invalidArgument("input \(index) of '\(node.name)' is missing")
        }
        return type
    }

    /// Input `index`'s concrete dimensions.
    public func inputShape(_ index: Int) throws -> [Int] {
        let type = try input(index)
        guard let dims = type.concreteShape else {
            throw KilnError.unsupported("input \(index) of '\(node.name)' has no static shape (\(type))")
        }
        return dims
    }

    /// Output `index`'s concrete dimensions.
    public func outputShape(_ index: Int) throws -> [Int] {
        guard index < outputs.count, let dims = outputs[index].concreteShape else {
            throw KilnError.unsupported("output \(index) of '\(node.name)' has no static shape")
        }
        return dims
    }
}

/// Lowers one node, or throws `unsupported` (with the reason) when this backend cannot run its parameters
/// or dtypes; the executor then falls back to the CPU if allowed.
public typealias CUDALoweringFunction = @Sendable (CUDANodeInfo) throws -> CUDALowering

/// One registry entry: layer type `L` lowered by `body`.
public func cudaLowering<L: Layer>(
    _ type: L.Type, _ body: @escaping @Sendable (L, CUDANodeInfo) throws -> CUDALowering
) -> (LayerKind, CUDALoweringFunction) {
    (
        L.kind,
        { info in
            guard let layer = info.node.layer as? L else {
                throw KilnError.runtime(
                    "layer of kind \(L.kind) has unexpected type \(Swift.type(of: info.node.layer))")
            }
            return try body(layer, info)
        }
    )
}
