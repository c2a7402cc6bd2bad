import KilnIR

/// A row-major batched matrix product run by cuBLASLt:
/// `D[i] = activation(alpha * op(A[i]) · op(B[i]) + beta * C[i] + bias)` for i in 0..<batch, where
/// op(A) is m×k, op(B) is k×n, D and C are m×n, and `bias` is a length-n row vector added to every row.
/// A stride of 0 repeats the same matrix for every batch entry.
public struct CUDAMatMul: Sendable, Hashable {
    public var a: CUDAOperand
    public var b: CUDAOperand
    public var c: CUDAOperand?
    public var bias: CUDAOperand?
    public var d: CUDAOperand
    public var m: Int
    public var n: Int
    public var k: Int
    /// A is stored k×m (row-major) when true.
    public var transposeA: Bool
    /// B is stored n×k (row-major) when true.
    public var transposeB: Bool
    public var batch: Int
    /// Elements between consecutive batch entries; 0 broadcasts one matrix.
    public var strideA: Int
    public var strideB: Int
    public var strideC: Int
    public var strideD: Int
    /// Elements between consecutive rows of D; nil: `n` (rows packed). Wider, D is written into `n` columns of
    /// a wider matrix (`CUDAOutputSlot`). Not with C.
    public var rowStrideD: Int?
    public var alpha: Float
    public var beta: Float
    /// Applied last; the runner uses a library epilogue where one matches exactly, else its own kernel.
    public var activation: EpilogueActivation?
    public var dtype: DType

    public init(
        a: CUDAOperand, b: CUDAOperand, c: CUDAOperand? = nil, bias: CUDAOperand? = nil, d: CUDAOperand,
        m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false, batch: Int = 1,
        strideA: Int = 0, strideB: Int = 0, strideC: Int = 0, strideD: Int = 0, alpha: Float = 1,
        beta: Float = 0, activation: EpilogueActivation? = nil, dtype: DType = .float32
    ) {
        self.a = a
        self.b = b
        self.c = c
        self.bias = bias
        self.d = d
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.batch = batch
        self.strideA = strideA
        self.strideB = strideB
        self.strideC = strideC
        self.strideD = strideD
        self.alpha = alpha
        self.beta = beta
        self.activation = activation
        self.dtype = dtype
    }
}

/// An N-d convolution run by cuDNN, with its epilogue: `y = activation(conv(x, w) + bias[c] + residual)`. The
/// shapes are always given channels-first (NCHW, weights OIHW/group); with `channelsLast` the tensors are
/// stored NHWC and the weights OHWI/group.
public struct CUDAConvolution: Sendable, Hashable {
    public var x: CUDAOperand
    public var w: CUDAOperand
    public var bias: CUDAOperand?
    public var residual: CUDAOperand?
    public var y: CUDAOperand
    public var inputShape: [Int]
    public var weightShape: [Int]
    public var outputShape: [Int]
    /// Per spatial axis; begin and end pads are equal (lowerings pad explicitly otherwise).
    public var pads: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var groups: Int
    public var activation: EpilogueActivation?
    public var dtype: DType
    public var channelsLast: Bool
    /// Y's element strides in the channels-first order of `outputShape`; nil: dense in its layout. Set, Y is
    /// written into a slot of a wider tensor (`CUDAOutputSlot`). Not with a residual.
    public var outputStrides: [Int]?

    public init(
        x: CUDAOperand, w: CUDAOperand, bias: CUDAOperand?, residual: CUDAOperand?, y: CUDAOperand,
        inputShape: [Int], weightShape: [Int], outputShape: [Int], pads: [Int], strides: [Int],
        dilations: [Int], groups: Int, activation: EpilogueActivation?, dtype: DType = .float32,
        channelsLast: Bool = false
    ) {
        self.x = x
        self.w = w
        self.bias = bias
        self.residual = residual
        self.y = y
        self.inputShape = inputShape
        self.weightShape = weightShape
        self.outputShape = outputShape
        self.pads = pads
        self.strides = strides
        self.dilations = dilations
        self.groups = groups
        self.activation = activation
        self.dtype = dtype
        self.channelsLast = channelsLast
    }
}
