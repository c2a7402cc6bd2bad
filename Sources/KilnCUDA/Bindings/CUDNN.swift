import Foundation
import KilnIR

/// cuDNN 9 (legacy convolution API) opened at run time, owning one `cudnnHandle_t`.
///
/// A cuDNN handle is not thread-safe and holds the stream work is enqueued on (`cudnnSetStream`): every
/// `cudnnSetStream` + call sequence must hold `lock` (the runners do), so one `CUDNN` may serve several streams,
/// one enqueue at a time; one `CUDNN` per execution context avoids that contention. cuDNN is optional: when
/// `init` throws `unsupported`, convolutions fall back and nothing else is affected.
///
/// Enum values and struct layouts are those of cuDNN 9's `cudnn_graph.h`, `cudnn_ops.h`, `cudnn_cnn.h`.
public final class CUDNN: @unchecked Sendable {
    // cudnnStatus_t
    static let success: Int32 = 0
    /// CUDNN_STATUS_NOT_SUPPORTED (3000) and its sub-codes (3001...) in cuDNN 9.
    static let notSupported: Range<Int32> = 3000..<4000
    // cudnnDataType_t
    static let dataFloat: Int32 = 0
    static let dataHalf: Int32 = 2
    static let dataBFloat16: Int32 = 9

    /// The cudnnDataType_t of float32, float16 and bfloat16 elements (nil for other dtypes).
    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: dataFloat
        case .float16: dataHalf
        case .bfloat16: dataBFloat16
        default: nil
        }
    }
    // cudnnTensorFormat_t
    static let formatNCHW: Int32 = 0
    /// cudnnTensorFormat_t CUDNN_TENSOR_NHWC: filters stored [K, R, S, C].
    static let formatNHWC: Int32 = 1
    // cudnnConvolutionMode_t: ONNX Conv is a cross-correlation.
    static let crossCorrelation: Int32 = 1
    // cudnnMathType_t
    static let defaultMath: Int32 = 0
    static let tensorOpMath: Int32 = 1
    static let tensorOpMathAllowConversion: Int32 = 2
    static let fmaMath: Int32 = 3
    // cudnnActivationMode_t
    static let activationRelu: Int32 = 1
    // cudnnNanPropagation_t
    static let propagateNaN: Int32 = 1
    /// CUDNN_CONVOLUTION_FWD_ALGO_COUNT
    static let forwardAlgorithmCount = 8
    /// sizeof(cudnnConvolutionFwdAlgoPerf_t): algo, status, float time, (pad), size_t memory, determinism,
    /// mathType, int reserved[3], (pad).
    static let perfBytes = 48
    static let perfAlgoOffset = 0
    static let perfStatusOffset = 4
    static let perfMemoryOffset = 16
    static let perfMathTypeOffset = 28

    typealias CreateFn = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    typealias DestroyFn = @convention(c) (OpaquePointer?) -> Int32
    typealias SetStreamFn = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    typealias ErrorStringFn = @convention(c) (Int32) -> UnsafePointer<CChar>?
    /// cudnnSetTensorNdDescriptor(desc, dataType, nbDims, dimA, strideA)
    typealias SetTensorNdFn =
        @convention(c) (
            OpaquePointer?, Int32, Int32, UnsafePointer<Int32>?, UnsafePointer<Int32>?
        ) -> Int32
    /// cudnnSetFilterNdDescriptor(desc, dataType, format, nbDims, filterDimA)
    typealias SetFilterNdFn = @convention(c) (OpaquePointer?, Int32, Int32, Int32, UnsafePointer<Int32>?) -> Int32
    /// cudnnSetConvolutionNdDescriptor(desc, arrayLength, padA, filterStrideA, dilationA, mode, computeType)
    typealias SetConvolutionNdFn =
        @convention(c) (
            OpaquePointer?, Int32, UnsafePointer<Int32>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?, Int32, Int32
        ) -> Int32
    /// cudnnSetConvolutionGroupCount / cudnnSetConvolutionMathType(desc, int)
    typealias SetIntFn = @convention(c) (OpaquePointer?, Int32) -> Int32
    /// cudnnGetConvolutionNdForwardOutputDim(convDesc, xDesc, wDesc, nbDims, tensorOutputDimA)
    typealias OutputDimFn =
        @convention(c) (
            OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32, UnsafeMutablePointer<Int32>?
        ) -> Int32
    /// cudnnGetConvolutionForwardAlgorithm_v7(handle, xDesc, wDesc, convDesc, yDesc, requested, returned, perf)
    typealias AlgorithmV7Fn =
        @convention(c) (
            OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32,
            UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?
        ) -> Int32
    /// cudnnGetConvolutionForwardWorkspaceSize(handle, xDesc, wDesc, convDesc, yDesc, algo, sizeInBytes)
    typealias WorkspaceSizeFn =
        @convention(c) (
            OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32,
            UnsafeMutablePointer<Int>?
        ) -> Int32
    /// cudnnConvolutionForward(handle, alpha, xDesc, x, wDesc, w, convDesc, algo, workSpace, workSpaceSize, beta,
    /// yDesc, y)
    typealias ForwardFn =
        @convention(c) (
            OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?,
            OpaquePointer?, Int32, UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, OpaquePointer?,
            UnsafeMutableRawPointer?
        ) -> Int32
    /// cudnnConvolutionBiasActivationForward(handle, alpha1, xDesc, x, wDesc, w, convDesc, algo, workSpace,
    /// workSpaceSize, alpha2, zDesc, z, biasDesc, bias, activationDesc, yDesc, y)
    typealias BiasActivationForwardFn =
        @convention(c) (
            OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?,
            OpaquePointer?, Int32, UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?,
            OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, OpaquePointer?, UnsafeMutableRawPointer?
        ) -> Int32
    /// cudnnAddTensor(handle, alpha, aDesc, A, beta, cDesc, C)
    typealias AddTensorFn =
        @convention(c) (
            OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?, UnsafeRawPointer?, OpaquePointer?,
            UnsafeMutableRawPointer?
        ) -> Int32
    /// cudnnSetActivationDescriptor(desc, mode, reluNanOpt, double coef)
    typealias SetActivationFn = @convention(c) (OpaquePointer?, Int32, Int32, Double) -> Int32
    /// cudnnActivationForward(handle, activationDesc, alpha, xDesc, x, beta, yDesc, y)
    typealias ActivationForwardFn =
        @convention(c) (
            OpaquePointer?, OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?, UnsafeRawPointer?,
            OpaquePointer?, UnsafeMutableRawPointer?
        ) -> Int32

    let library: DynamicLibrary
    let create: CreateFn
    let destroy: DestroyFn
    let setStream: SetStreamFn
    let errorString: ErrorStringFn?
    let createTensorDescriptor: CreateFn
    let destroyTensorDescriptor: DestroyFn
    let setTensorNd: SetTensorNdFn
    let createFilterDescriptor: CreateFn
    let destroyFilterDescriptor: DestroyFn
    let setFilterNd: SetFilterNdFn
    let createConvolutionDescriptor: CreateFn
    let destroyConvolutionDescriptor: DestroyFn
    let setConvolutionNd: SetConvolutionNdFn
    let setConvolutionGroupCount: SetIntFn
    let setConvolutionMathType: SetIntFn
    let outputDim: OutputDimFn
    let forwardAlgorithmV7: AlgorithmV7Fn
    let forwardWorkspaceSize: WorkspaceSizeFn
    let convolutionForward: ForwardFn
    let biasActivationForward: BiasActivationForwardFn
    let addTensor: AddTensorFn
    let createActivationDescriptor: CreateFn
    let destroyActivationDescriptor: DestroyFn
    let setActivationDescriptor: SetActivationFn
    let activationForward: ActivationForwardFn
    /// The cudnnHandle_t.
    let handle: OpaquePointer
    /// Serializes use of `handle` (stream binding + the calls enqueued on that stream).
    let lock = NSLock()
    /// The algorithm timed fastest per convolution signature (`CUDAConvolutionRunner.tune`), so repeated shapes
    /// are timed once per process. Guarded by `tuningLock`.
    var tunedAlgorithms: [String: Int32] = [:]
    /// How long the algorithm `tunedAlgorithms` chose took when this process timed it, by signature (what a
    /// layer that may write into a concat's output compares; `CUDAPlanBuilder`). Guarded by `tuningLock`.
    var tunedMilliseconds: [String: Double] = [:]
    let tuningLock = NSLock()

    /// Opens libcudnn.so.9 and creates a handle (on the current CUDA context, which must exist). Throws
    /// `unsupported` when cuDNN is not installed, `runtime` when cudnnCreate fails.
    public init() throws {
        let lib = try DynamicLibrary.open(["libcudnn.so.9", "libcudnn.so"], what: "cuDNN")
        library = lib
        create = try lib.function("cudnnCreate")
        destroy = try lib.function("cudnnDestroy")
        setStream = try lib.function("cudnnSetStream")
        errorString = lib.optionalFunction("cudnnGetErrorString")
        createTensorDescriptor = try lib.function("cudnnCreateTensorDescriptor")
        destroyTensorDescriptor = try lib.function("cudnnDestroyTensorDescriptor")
        setTensorNd = try lib.function("cudnnSetTensorNdDescriptor")
        createFilterDescriptor = try lib.function("cudnnCreateFilterDescriptor")
        destroyFilterDescriptor = try lib.function("cudnnDestroyFilterDescriptor")
        setFilterNd = try lib.function("cudnnSetFilterNdDescriptor")
        createConvolutionDescriptor = try lib.function("cudnnCreateConvolutionDescriptor")
        destroyConvolutionDescriptor = try lib.function("cudnnDestroyConvolutionDescriptor")
        setConvolutionNd = try lib.function("cudnnSetConvolutionNdDescriptor")
        setConvolutionGroupCount = try lib.function("cudnnSetConvolutionGroupCount")
        setConvolutionMathType = try lib.function("cudnnSetConvolutionMathType")
        outputDim = try lib.function("cudnnGetConvolutionNdForwardOutputDim")
        forwardAlgorithmV7 = try lib.function("cudnnGetConvolutionForwardAlgorithm_v7")
        forwardWorkspaceSize = try lib.function("cudnnGetConvolutionForwardWorkspaceSize")
        convolutionForward = try lib.function("cudnnConvolutionForward")
        biasActivationForward = try lib.function("cudnnConvolutionBiasActivationForward")
        addTensor = try lib.function("cudnnAddTensor")
        createActivationDescriptor = try lib.function("cudnnCreateActivationDescriptor")
        destroyActivationDescriptor = try lib.function("cudnnDestroyActivationDescriptor")
        setActivationDescriptor = try lib.function("cudnnSetActivationDescriptor")
        activationForward = try lib.function("cudnnActivationForward")
        var h: OpaquePointer?
        let status = create(&h)
        guard status == Self.success, let h else {
            throw KilnError.runtime("cudnn cudnnCreate failed: \(Self.describe(status, errorString))")
        }
        handle = h
    }

    deinit { _ = destroy(handle) }

    /// Throws `runtime("cudnn <function> failed: <status name>")` unless `status` is CUDNN_STATUS_SUCCESS.
    func check(_ status: Int32, _ function: String) throws {
        guard status != Self.success else { return }
        throw KilnError.runtime("cudnn \(function) failed: \(Self.describe(status, errorString))")
    }

    static func describe(_ status: Int32, _ name: ErrorStringFn?) -> String {
        if let name, let text = name(status) { return String(cString: text) }
        return "status \(status)"
    }
}
