import Foundation
import KilnIR

/// The primary context of one GPU. Safe to share between threads: every method first makes the context
/// current on the calling thread (`cuCtxSetCurrent`, a thread-local store in the driver), so callers never
/// manage current contexts themselves.
public final class CUDAContext: @unchecked Sendable {
    let driver: CUDADriver
    let device: Int32
    let handle: OpaquePointer

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    public let name: String
    /// Compute capability as major * 10 + minor (90 on Hopper).
    public let computeCapability: Int
    public let multiprocessors: Int
    /// Device memory in bytes.
    public let totalMemory: Int
    /// `cuDriverGetVersion`: 1000 * major + 10 * minor.
    public let driverVersion: Int
    /// Device memory allocated through this object and not yet freed (other users of the GPU, even other
    /// `CUDAContext` objects of the same primary context, are not counted).
    public var liveBytes: Int { accounting.withLock { live } }
    private let accounting = NSLock()
    private var live = 0

    func account(_ bytes: Int) { accounting.withLock { live += bytes } }

    private init(driver: CUDADriver, device: Int32, handle: OpaquePointer) throws {
        self.driver = driver
        self.device = device
        self.handle = handle
        var buffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&buffer, Int32(buffer.count - 1), device), "cuDeviceGetName")
        name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        func attribute(_ code: Int32, _ what: String) throws -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, code, device), "cuDeviceGetAttribute(\(what))")
            return Int(value)
        }
        let major = try attribute(CUDAConstant.attributeComputeCapabilityMajor, "compute capability major")
        let minor = try attribute(CUDAConstant.attributeComputeCapabilityMinor, "compute capability minor")
        computeCapability = major * 10 + minor
        multiprocessors = try attribute(CUDAConstant.attributeMultiprocessorCount, "multiprocessor count")
        var total = 0
        try driver.check(driver.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem_v2")
        totalMemory = total
        driverVersion = driver.version
    }

    deinit {
        _ = driver.cuDevicePrimaryCtxRelease(device)
    }

    /// Opens (retains) the primary context of GPU `ordinal`. Throws `unsupported` when there is no driver or
    /// no such device.
    public static func open(ordinal: Int = 0) throws -> CUDAContext {
        let driver = try CUDADriver.shared()
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw KilnError.unsupported(
                count == 0 ? "no CUDA device found" : "no CUDA device \(ordinal) (this machine has \(count))")
        }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else { throw KilnError.runtime("cuDevicePrimaryCtxRetain returned no context") }
        do {
            return try CUDAContext(driver: driver, device: device, handle: context)
        } catch {
            _ = driver.cuDevicePrimaryCtxRelease(device)
            throw error
        }
    }

    /// Makes this context current on the calling thread.
    public func makeCurrent() throws {
        try driver.check(driver.cuCtxSetCurrent(handle), "cuCtxSetCurrent")
    }

    /// `bytes` of device memory (`cuMemAlloc`, never managed memory), at least 256-byte aligned.
    public func allocate(bytes: Int) throws -> DeviceBuffer {
        guard bytes >= 0 else { throw KilnError.invalidArgument("cannot allocate \(bytes) bytes of device memory") }
        try makeCurrent()
        var address: CUdeviceptr = 0
        // cuMemAlloc rejects 0 bytes; an empty tensor still gets a distinct valid address.
        let result = driver.cuMemAlloc(&address, max(bytes, 1))
        if result == CUDAConstant.errorOutOfMemory {
            let info = try? memoryInfo()
            let detail = info.map { " (free \($0.free) of \($0.total))" } ?? ""
            throw KilnError.runtime("out of device memory allocating \(bytes) bytes\(detail)")
        }
        try driver.check(result, "cuMemAlloc_v2(\(bytes) bytes)")
        account(max(bytes, 1))
        return DeviceBuffer(context: self, address: address, bytes: bytes)
    }

    /// `bytes` of page-locked host memory (`cuMemHostAlloc`, portable), for fast asynchronous copies.
    public func allocatePinned(bytes: Int) throws -> PinnedBuffer {
        guard bytes >= 0 else { throw KilnError.invalidArgument("cannot allocate \(bytes) bytes of pinned memory") }
        try makeCurrent()
        var pointer: UnsafeMutableRawPointer?
        try driver.check(
            driver.cuMemHostAlloc(&pointer, max(bytes, 1), CUDAConstant.hostAllocPortable),
            "cuMemHostAlloc(\(bytes) bytes)")
        guard let pointer else { throw KilnError.runtime("cuMemHostAlloc returned no memory") }
        return PinnedBuffer(context: self, pointer: pointer, bytes: bytes)
    }

    /// Free and total device memory in bytes (`cuMemGetInfo`).
    public func memoryInfo() throws -> (free: Int, total: Int) {
        try makeCurrent()
        var free = 0
        var total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2")
        return (free, total)
    }

    /// A stream that does not synchronize with the legacy default stream.
    public func makeStream() throws -> CUDAStream {
        try makeCurrent()
        var stream: OpaquePointer?
        try driver.check(driver.cuStreamCreate(&stream, CUDAConstant.streamNonBlocking), "cuStreamCreate")
        guard let stream else { throw KilnError.runtime("cuStreamCreate returned no stream") }
        return CUDAStream(context: self, stream: stream)
    }

    /// An event; `timing: false` makes a cheaper one for synchronization only.
    public func makeEvent(timing: Bool = true) throws -> CUDAEvent {
        try makeCurrent()
        var event: OpaquePointer?
        let flags = timing ? CUDAConstant.eventDefault : CUDAConstant.eventDisableTiming
        try driver.check(driver.cuEventCreate(&event, flags), "cuEventCreate")
        guard let event else { throw KilnError.runtime("cuEventCreate returned no event") }
        return CUDAEvent(context: self, event: event)
    }

    /// Loads a cubin (or PTX, NUL-terminated) image (`cuModuleLoadData`).
    public func loadModule(image: [UInt8]) throws -> CUDAModule {
        guard !image.isEmpty else { throw KilnError.invalidArgument("cannot load an empty CUDA module image") }
        try makeCurrent()
        var module: OpaquePointer?
        let result = image.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress) }
        try driver.check(result, "cuModuleLoadData(\(image.count) bytes)")
        guard let module else { throw KilnError.runtime("cuModuleLoadData returned no module") }
        return CUDAModule(context: self, module: module)
    }

    /// Whether the driver can encode TMA tensor maps (CUDA 12 and later).
    public var hasTensorMaps: Bool { driver.cuTensorMapEncodeTiled != nil }

    /// Whether the driver can encode im2col tensor maps.
    public var hasIm2colTensorMaps: Bool { driver.cuTensorMapEncodeIm2col != nil }

    /// The 128 bytes of `map` over the matrix at device `address` (`cuTensorMapEncodeTiled`, or
    /// `cuTensorMapEncodeIm2col` for a map with a window).
    public func encodeTensorMap(_ map: CUDATensorMap, address: UInt64) throws -> [UInt8] {
        let type: UInt32
        switch map.dtype {
        case .float16: type = CUDAConstant.tensorMapFloat16
        case .bfloat16: type = CUDAConstant.tensorMapBFloat16
        case .int8, .uint8: type = CUDAConstant.tensorMapUInt8
        default: throw KilnError.unsupported("tensor maps of \(map.dtype.onnxName) matrices")
        }
        let size = map.dtype.byteSize
        guard address % 16 == 0, map.rowStride * size % 16 == 0, map.rows > 0, map.columns > 0,
            map.rowStride >= map.columns, (1...256).contains(map.boxRows), map.boxColumns > 0,
            map.boxColumns * size <= map.swizzleBytes, map.swizzleBytes == 128 || map.swizzleBytes == 64
        else {
            throw KilnError.invalidArgument(
                "tensor map of \(map.rows) x \(map.columns) (row stride \(map.rowStride), box \(map.boxRows) x "
                    + "\(map.boxColumns), \(map.swizzleBytes)-byte swizzle): needs 16-byte aligned rows and a box of "
                    + "at most 256 rows of at most the swizzle's bytes")
        }
        let swizzle = map.swizzleBytes == 128 ? CUDAConstant.tensorMapSwizzle128B : CUDAConstant.tensorMapSwizzle64B
        // The driver writes the map to 64-byte aligned memory.
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        defer { storage.deallocate() }
        let pointer = UnsafeMutableRawPointer(bitPattern: UInt(address))
        if let window = map.window {
            guard let encode = driver.cuTensorMapEncodeIm2col else {
                throw KilnError.unsupported("this CUDA driver has no cuTensorMapEncodeIm2col (CUDA 12 or later needed)")
            }
            let pixels = window.images * window.height * window.width
            guard map.rows == pixels, map.rowStride == map.columns, window.cornersFit else {
                throw KilnError.invalidArgument(
                    "im2col tensor map of \(map.rows) pixels x \(map.columns) channels does not fit its window \(window)"
                )
            }
            let channels = UInt64(map.columns)
            let sizes: [UInt64] = [channels, UInt64(window.width), UInt64(window.height), UInt64(window.images)]
            let strides: [UInt64] = [1, UInt64(window.width), UInt64(window.width * window.height)].map {
                $0 * channels * UInt64(size)
            }
            let steps: [UInt32] = [1, UInt32(window.strides[1]), UInt32(window.strides[0]), 1]
            let result = encode(
                storage, type, 4, pointer, sizes, strides, window.lowerCorner.map(Int32.init),
                window.upperCorner.map(Int32.init),
                UInt32(map.boxColumns), UInt32(map.boxRows), steps, 0, swizzle, CUDAConstant.tensorMapL2Promotion256B, 0
            )
            try driver.check(result, "cuTensorMapEncodeIm2col(\(window), \(map.boxRows) pixels x \(map.boxColumns))")
        } else {
            guard let encode = driver.cuTensorMapEncodeTiled else {
                throw KilnError.unsupported("this CUDA driver has no cuTensorMapEncodeTiled (CUDA 12 or later needed)")
            }
            let sizes: [UInt64] = [UInt64(map.columns), UInt64(map.rows)]
            let strides: [UInt64] = [UInt64(map.rowStride * size)]
            let box: [UInt32] = [UInt32(map.boxColumns), UInt32(map.boxRows)]
            let steps: [UInt32] = [1, 1]
            let result = encode(
                storage, type, 2, pointer, sizes, strides, box, steps, 0, swizzle,
                CUDAConstant.tensorMapL2Promotion256B, 0)
            try driver.check(
                result, "cuTensorMapEncodeTiled(\(map.rows) x \(map.columns), box \(map.boxRows) x \(map.boxColumns))")
        }
        return Array(UnsafeRawBufferPointer(start: storage, count: 128))
    }

    /// Waits for all work on this context (`cuCtxSynchronize`); reports asynchronous kernel faults.
    public func synchronize() throws {
        try makeCurrent()
        try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
    }
}

/// Device memory; freed (`cuMemFree`) when the last reference goes.
public final class DeviceBuffer: @unchecked Sendable {
    let context: CUDAContext
    /// The device address of the first byte.
    public let address: UInt64
    /// The size asked for.
    public let bytes: Int

    init(context: CUDAContext, address: UInt64, bytes: Int) {
        self.context = context
        self.address = address
        self.bytes = bytes
    }

    deinit {
        // A deinit cannot throw; a failing free leaks at worst (the context owns the memory anyway).
        try? context.makeCurrent()
        _ = context.driver.cuMemFree(address)
        context.account(-max(bytes, 1))
    }
}

/// Page-locked host memory; freed (`cuMemFreeHost`) when the last reference goes.
public final class PinnedBuffer: @unchecked Sendable {
    let context: CUDAContext
    public let pointer: UnsafeMutableRawPointer
    public let bytes: Int

    init(context: CUDAContext, pointer: UnsafeMutableRawPointer, bytes: Int) {
        self.context = context
        self.pointer = pointer
        self.bytes = bytes
    }

    deinit {
        try? context.makeCurrent()
        _ = context.driver.cuMemFreeHost(pointer)
    }
}
