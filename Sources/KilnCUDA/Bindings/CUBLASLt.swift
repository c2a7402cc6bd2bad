import Foundation
import KilnIR

/// cuBLASLt opened at run time, with one library handle. The handle may be shared by runners on several streams
/// (cuBLASLt handles carry no stream); each `CUDAMatMulRunner` owns its own descriptors.
///
/// Enum values and struct layouts below are those of `cublasLt.h` / `cublas_api.h` / `library_types.h`
/// (CUDA 11.x-13.x; unchanged across those versions).
public final class CUBLASLt: @unchecked Sendable {
    /// The heuristic rank of the fastest algorithm measured per matMul signature (see
    /// `CUDAMatMulRunner.tune`), so repeated shapes are timed once per process. Guarded by `tuningLock`.
    var tunedRanks: [String: Int] = [:]
    let tuningLock = NSLock()
    // cublasStatus_t
    static let success: Int32 = 0
    // cudaDataType_t
    static let dataR32F: Int32 = 0
    static let dataR16F: Int32 = 2
    static let dataR8I: Int32 = 3
    static let dataR16BF: Int32 = 14
    static let dataR32I: Int32 = 10
    static let dataR8FE4M3: Int32 = 28

    /// The cudaDataType_t of float32, float16, bfloat16 and float8e4m3fn elements (nil for other dtypes).
    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: dataR32F
        case .float16: dataR16F
        case .bfloat16: dataR16BF
        case .float8e4m3fn: dataR8FE4M3
        default: nil
        }
    }
    // cublasComputeType_t
    static let compute32F: Int32 = 68
    static let compute32I: Int32 = 72
    static let compute32FFastTF32: Int32 = 77
    // cublasOperation_t
    static let opN: Int32 = 0
    static let opT: Int32 = 1
    // cublasLtMatmulDescAttributes_t
    static let descTransA: Int32 = 3
    static let descTransB: Int32 = 4
    static let descEpilogue: Int32 = 7
    static let descBiasPointer: Int32 = 8
    // cublasLtEpilogue_t
    static let epilogueDefault: UInt32 = 1
    static let epilogueRelu: UInt32 = 2
    static let epilogueBias: UInt32 = 4
    static let epilogueReluBias: UInt32 = 6
    static let epilogueGelu: UInt32 = 32
    static let epilogueGeluBias: UInt32 = 36
    // cublasLtMatrixLayoutAttribute_t
    static let layoutBatchCount: Int32 = 5
    static let layoutStridedBatchOffset: Int32 = 6
    // cublasLtMatmulPreferenceAttributes_t
    static let preferenceMaxWorkspaceBytes: Int32 = 1
    static let preferenceReductionSchemeMask: Int32 = 3
    // cublasLtReductionScheme_t: split-K partial sums added in the compute type (float32 for 16-bit products).
    static let reductionComputeType: UInt32 = 2
    /// sizeof(cublasLtMatmulHeuristicResult_t): algo (uint64_t[8]), size_t workspaceSize, cublasStatus_t state,
    /// float wavesCount, int reserved[4].
    static let heuristicResultBytes = 96
    static let heuristicWorkspaceOffset = 64
    static let heuristicStateOffset = 72

    typealias CreateFn = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    typealias DestroyFn = @convention(c) (OpaquePointer?) -> Int32
    typealias DescCreateFn = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, Int32) -> Int32
    typealias SetAttributeFn = @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer?, Int) -> Int32
    typealias LayoutCreateFn =
        @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, UInt64, UInt64, Int64)
        -> Int32
    typealias HeuristicFn =
        @convention(c) (
            OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
            OpaquePointer?, Int32, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?
        ) -> Int32
    typealias MatmulFn =
        @convention(c) (
            OpaquePointer?, OpaquePointer?, UnsafeRawPointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?,
            OpaquePointer?, UnsafeRawPointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeMutableRawPointer?,
            OpaquePointer?, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, OpaquePointer?
        ) -> Int32
    typealias StatusNameFn = @convention(c) (Int32) -> UnsafePointer<CChar>?

    let library: DynamicLibrary
    let create: CreateFn
    let destroy: DestroyFn
    let matmulDescCreate: DescCreateFn
    let matmulDescDestroy: DestroyFn
    let matmulDescSetAttribute: SetAttributeFn
    let matrixLayoutCreate: LayoutCreateFn
    let matrixLayoutDestroy: DestroyFn
    let matrixLayoutSetAttribute: SetAttributeFn
    let preferenceCreate: CreateFn
    let preferenceDestroy: DestroyFn
    let preferenceSetAttribute: SetAttributeFn
    let algoGetHeuristic: HeuristicFn
    let matmul: MatmulFn
    let statusName: StatusNameFn?
    /// The cublasLtHandle_t.
    let handle: OpaquePointer

    /// Opens libcublasLt (13, 12, or unversioned) and creates a handle; throws `unsupported` when the library
    /// is absent and `runtime` when cublasLtCreate fails.
    public init() throws {
        let lib = try DynamicLibrary.open(
            ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], what: "cuBLASLt")
        library = lib
        create = try lib.function("cublasLtCreate")
        destroy = try lib.function("cublasLtDestroy")
        matmulDescCreate = try lib.function("cublasLtMatmulDescCreate")
        matmulDescDestroy = try lib.function("cublasLtMatmulDescDestroy")
        matmulDescSetAttribute = try lib.function("cublasLtMatmulDescSetAttribute")
        matrixLayoutCreate = try lib.function("cublasLtMatrixLayoutCreate")
        matrixLayoutDestroy = try lib.function("cublasLtMatrixLayoutDestroy")
        matrixLayoutSetAttribute = try lib.function("cublasLtMatrixLayoutSetAttribute")
        preferenceCreate = try lib.function("cublasLtMatmulPreferenceCreate")
        preferenceDestroy = try lib.function("cublasLtMatmulPreferenceDestroy")
        preferenceSetAttribute = try lib.function("cublasLtMatmulPreferenceSetAttribute")
        algoGetHeuristic = try lib.function("cublasLtMatmulAlgoGetHeuristic")
        matmul = try lib.function("cublasLtMatmul")
        statusName = lib.optionalFunction("cublasLtGetStatusName")
        var h: OpaquePointer?
        let status = create(&h)
        guard status == Self.success, let h else {
            throw KilnError.runtime("cublasLt cublasLtCreate failed: \(Self.describe(status, statusName))")
        }
        handle = h
    }

    deinit { _ = destroy(handle) }

    /// Throws `runtime("cublasLt <function> failed: <status name>")` unless `status` is CUBLAS_STATUS_SUCCESS.
    func check(_ status: Int32, _ function: String) throws {
        guard status != Self.success else { return }
        throw KilnError.runtime("cublasLt \(function) failed: \(Self.describe(status, statusName))")
    }

    static func describe(_ status: Int32, _ name: StatusNameFn?) -> String {
        if let name, let text = name(status) { return String(cString: text) }
        return "status \(status)"
    }

    /// Sets one attribute from a plain value (its byte size is the attribute's C type size).
    func setAttribute<T>(
        _ setter: SetAttributeFn, _ object: OpaquePointer?, _ attribute: Int32, _ value: T, _ function: String
    ) throws {
        var copy = value
        let status = withUnsafeBytes(of: &copy) { setter(object, attribute, $0.baseAddress, $0.count) }
        try check(status, function)
    }
}

/// A device address as the raw pointer C functions take (nil for 0).
@inline(__always)
func libraryDevicePointer(_ address: UInt64) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(bitPattern: UInt(address))
}
