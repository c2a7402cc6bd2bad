import Foundation
import KilnIR

/// A loaded cubin; unloaded (`cuModuleUnload`) when the last module or function reference goes.
public final class CUDAModule: @unchecked Sendable {
    let context: CUDAContext
    let module: OpaquePointer

    init(context: CUDAContext, module: OpaquePointer) {
        self.context = context
        self.module = module
    }

    deinit {
        try? context.makeCurrent()
        _ = context.driver.cuModuleUnload(module)
    }

    /// The `extern "C" __global__` function `name`.
    public func function(_ name: String) throws -> CUDAFunction {
        try context.makeCurrent()
        var function: OpaquePointer?
        try context.driver.check(
            context.driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction('\(name)')")
        guard let function else { throw KilnError.runtime("cuModuleGetFunction('\(name)') returned nothing") }
        return CUDAFunction(module: self, function: function, name: name)
    }
}

/// One kernel of a loaded module; keeps its module loaded.
public struct CUDAFunction: @unchecked Sendable {
    let module: CUDAModule
    let function: OpaquePointer
    public let name: String

    /// The largest launch sizes the hardware takes (grid y and z 65535, block 1024 threads, block z 64).
    static let maxGridX = Int(Int32.max)
    static let maxGridYZ = 65535
    static let maxBlockThreads = 1024

    /// Packs `arguments` once (resolving operands through `resolve`, which returns the device address of an
    /// operand's first byte) into argument memory laid out as the C ABI needs (see `KernelArgumentPacker`), so
    /// the launch can be repeated cheaply and captured in CUDA graphs. Checks the launch sizes.
    public func prepare(
        grid: CUDADim3, block: CUDADim3, sharedBytes: Int, arguments: [CUDAArgument],
        resolve: (CUDAOperand) throws -> UInt64
    ) throws -> PreparedLaunch {
        try Self.validate(grid: grid, block: block, sharedBytes: sharedBytes, function: name)
        let packed = try withErrorContext("kernel '\(name)'") {
            try KernelArgumentPacker.pack(arguments, resolve: resolve) { map, address in
                try module.context.encodeTensorMap(map, address: address)
            }
        }
        return PreparedLaunch(function: self, grid: grid, block: block, sharedBytes: sharedBytes, packed: packed)
    }

    /// Sets CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, needed before launching with more than 48 KB of
    /// dynamic shared memory.
    public func setMaxDynamicSharedMemory(_ bytes: Int) throws {
        guard bytes >= 0, bytes <= Int(Int32.max) else {
            throw KilnError.invalidArgument("kernel '\(name)': invalid dynamic shared memory size \(bytes)")
        }
        let context = module.context
        try context.makeCurrent()
        try context.driver.check(
            context.driver.cuFuncSetAttribute(function, CUDAConstant.functionMaxDynamicSharedBytes, Int32(bytes)),
            "cuFuncSetAttribute(\(name), max dynamic shared memory \(bytes))")
    }

    /// Throws `invalidArgument` for launch sizes the hardware rejects, before the driver sees them.
    static func validate(grid: CUDADim3, block: CUDADim3, sharedBytes: Int, function: String) throws {
        func fail(_ why: String) -> KilnError {
            KilnError.invalidArgument("kernel '\(function)': \(why) (grid \(grid), block \(block))")
        }
        guard grid.x >= 1, grid.y >= 1, grid.z >= 1, block.x >= 1, block.y >= 1, block.z >= 1 else {
            throw fail("empty launch")
        }
        guard grid.x <= maxGridX, grid.y <= maxGridYZ, grid.z <= maxGridYZ else { throw fail("grid too large") }
        guard block.x <= maxBlockThreads, block.y <= maxBlockThreads, block.z <= 64,
            block.x * block.y * block.z <= maxBlockThreads
        else { throw fail("block larger than 1024 threads") }
        guard sharedBytes >= 0, sharedBytes <= Int(Int32.max) else { throw fail("shared memory \(sharedBytes)") }
    }
}

/// A kernel launch with its arguments packed once; `enqueue` is one `cuLaunchKernel`, cheap to repeat and
/// safe to capture in a graph (the argument memory lives as long as this object).
public final class PreparedLaunch: @unchecked Sendable {
    public let function: CUDAFunction
    public let grid: CUDADim3
    public let block: CUDADim3
    public let sharedBytes: Int
    private let storage: UnsafeMutableRawPointer
    private let parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let parameterCount: Int

    init(
        function: CUDAFunction, grid: CUDADim3, block: CUDADim3, sharedBytes: Int,
        packed: KernelArgumentPacker.Packed
    ) {
        self.function = function
        self.grid = grid
        self.block = block
        self.sharedBytes = sharedBytes
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(packed.bytes.count, 8), alignment: 64)
        packed.bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { storage.copyMemory(from: base, byteCount: source.count) }
        }
        let parameters = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(
            capacity: max(packed.offsets.count, 1))
        for (index, offset) in packed.offsets.enumerated() {
            (parameters + index).initialize(to: storage + offset)
        }
        self.storage = storage
        self.parameters = parameters
        parameterCount = packed.offsets.count
    }

    deinit {
        parameters.deallocate()
        storage.deallocate()
    }

    /// Launches the kernel on `stream` (`cuLaunchKernel`). A launch error (bad configuration, too many
    /// resources) throws here; a fault inside the kernel surfaces at the next synchronization.
    public func enqueue(on stream: CUDAStream) throws {
        let context = function.module.context
        try context.makeCurrent()
        let result = context.driver.cuLaunchKernel(
            function.function, UInt32(grid.x), UInt32(grid.y), UInt32(grid.z), UInt32(block.x), UInt32(block.y),
            UInt32(block.z), UInt32(sharedBytes), stream.stream, parameterCount == 0 ? nil : parameters, nil)
        try context.driver.check(result, "cuLaunchKernel('\(function.name)', grid \(grid), block \(block))")
    }
}
