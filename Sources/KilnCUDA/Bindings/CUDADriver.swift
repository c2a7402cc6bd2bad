import Foundation
import KilnIR

/// A device address (`CUdeviceptr`, 64-bit on every platform CUDA 13 supports).
typealias CUdeviceptr = UInt64
/// A `CUresult`; 0 is success.
typealias CUresult = Int32
/// Out-parameter for the opaque handle types (`CUcontext`, `CUstream`, `CUevent`, `CUmodule`, ...).
typealias HandleOut = UnsafeMutablePointer<OpaquePointer?>?

/// Numeric constants of the driver API used here, from the CUDA driver API reference (cuda.h).
enum CUDAConstant {
    static let errorOutOfMemory: CUresult = 2  // CUDA_ERROR_OUT_OF_MEMORY
    static let errorNoDevice: CUresult = 100  // CUDA_ERROR_NO_DEVICE
    static let attributeMultiprocessorCount: Int32 = 16  // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
    static let attributeComputeCapabilityMajor: Int32 = 75  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    static let attributeComputeCapabilityMinor: Int32 = 76  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
    static let streamNonBlocking: UInt32 = 1  // CU_STREAM_NON_BLOCKING
    static let captureModeThreadLocal: UInt32 = 1  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    static let eventDefault: UInt32 = 0  // CU_EVENT_DEFAULT
    static let eventDisableTiming: UInt32 = 2  // CU_EVENT_DISABLE_TIMING
    static let hostAllocPortable: UInt32 = 1  // CU_MEMHOSTALLOC_PORTABLE
    static let functionMaxDynamicSharedBytes: Int32 = 8  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    static let tensorMapFloat16: UInt32 = 6  // CU_TENSOR_MAP_DATA_TYPE_FLOAT16
    static let tensorMapBFloat16: UInt32 = 9  // CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
    static let tensorMapUInt8: UInt32 = 0  // CU_TENSOR_MAP_DATA_TYPE_UINT8 (int8 bytes too: zeros fill alike)
    static let tensorMapSwizzle128B: UInt32 = 3  // CU_TENSOR_MAP_SWIZZLE_128B
    static let tensorMapSwizzle64B: UInt32 = 2  // CU_TENSOR_MAP_SWIZZLE_64B
    static let tensorMapL2Promotion256B: UInt32 = 3  // CU_TENSOR_MAP_L2_PROMOTION_L2_256B
}

/// The libcuda.so.1 function table, loaded once per process. Every failing call becomes a
/// `KilnError(.runtime)` naming the function and the driver's error name and text (see `check`).
final class CUDADriver: @unchecked Sendable {
    typealias Init = @convention(c) (UInt32) -> CUresult
    typealias GetInt = @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    typealias GetErrorText = @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult
    typealias DeviceGet = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> CUresult
    typealias DeviceGetName = @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32) -> CUresult
    typealias DeviceGetAttribute = @convention(c) (UnsafeMutablePointer<Int32>?, Int32, Int32) -> CUresult
    typealias DeviceTotalMem = @convention(c) (UnsafeMutablePointer<Int>?, Int32) -> CUresult
    typealias PrimaryCtxRetain = @convention(c) (HandleOut, Int32) -> CUresult
    typealias PrimaryCtxRelease = @convention(c) (Int32) -> CUresult
    typealias HandleCall = @convention(c) (OpaquePointer?) -> CUresult
    typealias NoArgs = @convention(c) () -> CUresult
    typealias MemAlloc = @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> CUresult
    typealias MemFree = @convention(c) (CUdeviceptr) -> CUresult
    typealias MemHostAlloc = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int, UInt32) -> CUresult
    typealias MemFreeHost = @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    typealias MemGetInfo = @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> CUresult
    typealias CopyHtoD = @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, OpaquePointer?) -> CUresult
    typealias CopyDtoH = @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, OpaquePointer?) -> CUresult
    typealias CopyDtoD = @convention(c) (CUdeviceptr, CUdeviceptr, Int, OpaquePointer?) -> CUresult
    typealias MemsetD8 = @convention(c) (CUdeviceptr, UInt8, Int, OpaquePointer?) -> CUresult
    typealias CreateWithFlags = @convention(c) (HandleOut, UInt32) -> CUresult
    typealias BeginCapture = @convention(c) (OpaquePointer?, UInt32) -> CUresult
    typealias EndCapture = @convention(c) (OpaquePointer?, HandleOut) -> CUresult
    typealias GraphInstantiate = @convention(c) (HandleOut, OpaquePointer?, UInt64) -> CUresult
    typealias TwoHandles = @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    typealias StreamWaitEvent = @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult
    typealias EventElapsed = @convention(c) (UnsafeMutablePointer<Float>?, OpaquePointer?, OpaquePointer?) -> CUresult
    typealias ModuleLoadData = @convention(c) (HandleOut, UnsafeRawPointer?) -> CUresult
    typealias ModuleGetFunction = @convention(c) (HandleOut, OpaquePointer?, UnsafePointer<CChar>?) -> CUresult
    typealias FuncSetAttribute = @convention(c) (OpaquePointer?, Int32, Int32) -> CUresult
    /// (map, data type, rank, address, sizes, strides after the first, box, element strides, interleave,
    /// swizzle, L2 promotion, out-of-bounds fill)
    typealias TensorMapEncodeTiled =
        @convention(c) (
            UnsafeMutableRawPointer?, UInt32, UInt32, UnsafeMutableRawPointer?, UnsafePointer<UInt64>?,
            UnsafePointer<UInt64>?, UnsafePointer<UInt32>?, UnsafePointer<UInt32>?, UInt32, UInt32, UInt32, UInt32
        ) -> CUresult
    typealias TensorMapEncodeIm2col =
        @convention(c) (
            UnsafeMutableRawPointer?, UInt32, UInt32, UnsafeMutableRawPointer?, UnsafePointer<UInt64>?,
            UnsafePointer<UInt64>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?, UInt32, UInt32,
            UnsafePointer<UInt32>?,
            UInt32, UInt32, UInt32, UInt32
        ) -> CUresult
    typealias LaunchKernel =
        @convention(c) (
            OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> CUresult

    let library: DynamicLibrary
    /// `cuDriverGetVersion`: 1000 * major + 10 * minor (13000 for CUDA 13.0).
    let version: Int

    let cuGetErrorName: GetErrorText
    let cuGetErrorString: GetErrorText
    let cuDeviceGetCount: GetInt
    let cuDeviceGet: DeviceGet
    let cuDeviceGetName: DeviceGetName
    let cuDeviceGetAttribute: DeviceGetAttribute
    let cuDeviceTotalMem: DeviceTotalMem
    let cuDevicePrimaryCtxRetain: PrimaryCtxRetain
    let cuDevicePrimaryCtxRelease: PrimaryCtxRelease
    let cuCtxSetCurrent: HandleCall
    let cuCtxSynchronize: NoArgs
    let cuMemAlloc: MemAlloc
    let cuMemFree: MemFree
    let cuMemHostAlloc: MemHostAlloc
    let cuMemFreeHost: MemFreeHost
    let cuMemGetInfo: MemGetInfo
    let cuMemcpyHtoDAsync: CopyHtoD
    let cuMemcpyDtoHAsync: CopyDtoH
    let cuMemcpyDtoDAsync: CopyDtoD
    let cuMemsetD8Async: MemsetD8
    let cuStreamCreate: CreateWithFlags
    let cuStreamDestroy: HandleCall
    let cuStreamSynchronize: HandleCall
    let cuStreamWaitEvent: StreamWaitEvent
    let cuStreamBeginCapture: BeginCapture
    let cuStreamEndCapture: EndCapture
    let cuGraphInstantiateWithFlags: GraphInstantiate
    let cuGraphDestroy: HandleCall
    let cuGraphExecDestroy: HandleCall
    let cuGraphLaunch: TwoHandles
    let cuEventCreate: CreateWithFlags
    let cuEventDestroy: HandleCall
    let cuEventRecord: TwoHandles
    let cuEventSynchronize: HandleCall
    let cuEventElapsedTime: EventElapsed
    let cuModuleLoadData: ModuleLoadData
    let cuModuleUnload: HandleCall
    let cuModuleGetFunction: ModuleGetFunction
    let cuFuncSetAttribute: FuncSetAttribute
    let cuLaunchKernel: LaunchKernel
    /// CUDA 12 and later; nil on older drivers (the kernels that need it are then not chosen).
    let cuTensorMapEncodeTiled: TensorMapEncodeTiled?
    let cuTensorMapEncodeIm2col: TensorMapEncodeIm2col?

    private init(library: DynamicLibrary) throws {
        self.library = library
        let lib = library
        cuGetErrorName = try lib.function("cuGetErrorName")
        cuGetErrorString = try lib.function("cuGetErrorString")
        let cuInit: Init = try lib.function("cuInit")
        let cuDriverGetVersion: GetInt = try lib.function("cuDriverGetVersion")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try lib.function("cuDevicePrimaryCtxRelease_v2")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.function("cuCtxSynchronize")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemHostAlloc = try lib.function("cuMemHostAlloc")
        cuMemFreeHost = try lib.function("cuMemFreeHost")
        cuMemGetInfo = try lib.function("cuMemGetInfo_v2")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try lib.function("cuMemsetD8Async")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamDestroy = try lib.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuStreamWaitEvent = try lib.function("cuStreamWaitEvent")
        cuStreamBeginCapture = try lib.function("cuStreamBeginCapture_v2")
        cuStreamEndCapture = try lib.function("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try lib.function("cuGraphInstantiateWithFlags")
        cuGraphDestroy = try lib.function("cuGraphDestroy")
        cuGraphExecDestroy = try lib.function("cuGraphExecDestroy")
        cuGraphLaunch = try lib.function("cuGraphLaunch")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventDestroy = try lib.function("cuEventDestroy_v2")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        // CUDA 12.8 added cuEventElapsedTime_v2 (same signature); older drivers only have the first.
        if let elapsed: EventElapsed = lib.optionalFunction("cuEventElapsedTime_v2") {
            cuEventElapsedTime = elapsed
        } else {
            cuEventElapsedTime = try lib.function("cuEventElapsedTime")
        }
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleUnload = try lib.function("cuModuleUnload")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuFuncSetAttribute = try lib.function("cuFuncSetAttribute")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuTensorMapEncodeTiled = lib.optionalFunction("cuTensorMapEncodeTiled")
        cuTensorMapEncodeIm2col = lib.optionalFunction("cuTensorMapEncodeIm2col")

        let initResult = cuInit(0)
        if initResult == CUDAConstant.errorNoDevice {
            throw KilnError.unsupported("no CUDA device found (cuInit: CUDA_ERROR_NO_DEVICE)")
        }
        var version: Int32 = 0
        // Error text needs the table above, so check through a helper that uses the loaded functions.
        try Self.check(initResult, "cuInit", name: cuGetErrorName, text: cuGetErrorString)
        try Self.check(cuDriverGetVersion(&version), "cuDriverGetVersion", name: cuGetErrorName, text: cuGetErrorString)
        self.version = Int(version)
    }

    private static let loaded: Result<CUDADriver, KilnError> = {
        do {
            let library = try DynamicLibrary.open(["libcuda.so.1"], what: "CUDA driver")
            return .success(try CUDADriver(library: library))
        } catch let error as KilnError {
            return .failure(error)
        } catch {
            return .failure(KilnError.runtime("loading the CUDA driver: \(error)"))
        }
    }()

    /// The process's driver table; the first call loads libcuda.so.1 and runs `cuInit(0)`. A failure is cached
    /// too: a machine without a driver answers `unsupported("no CUDA driver found (libcuda.so.1)")` every time.
    static func shared() throws -> CUDADriver {
        try loaded.get()
    }

    /// Throws `KilnError(.runtime)` when `result` is not success, naming `function` and the driver's error text.
    func check(_ result: CUresult, _ function: @autoclosure () -> String) throws {
        if result != 0 {
            try Self.check(result, function(), name: cuGetErrorName, text: cuGetErrorString)
        }
    }

    /// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for `result`.
    func describe(_ result: CUresult) -> String {
        Self.describe(result, name: cuGetErrorName, text: cuGetErrorString)
    }

    private static func check(
        _ result: CUresult, _ function: String, name: GetErrorText, text: GetErrorText
    ) throws {
        guard result != 0 else { return }
        throw KilnError.runtime("\(function) failed: \(describe(result, name: name, text: text))")
    }

    private static func describe(_ result: CUresult, name: GetErrorText, text: GetErrorText) -> String {
        var namePointer: UnsafePointer<CChar>?
        var textPointer: UnsafePointer<CChar>?
        let errorName = name(result, &namePointer) == 0 ? namePointer.map { String(cString: $0) } : nil
        let errorText = text(result, &textPointer) == 0 ? textPointer.map { String(cString: $0) } : nil
        return "\(errorName ?? "CUresult \(result)") (\(errorText ?? "unknown error"))"
    }
}
