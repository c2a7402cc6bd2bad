import KilnIR

/// Kiln's own float32 product for channels-last 1×1 convolutions, `C = act(A·Bᵀ + bias + R)` with A `[M, K]`
/// (pixels × input channels), B `[N, K]` (the weights), R and C `[M, N]`, all row-major float32: a tactic
/// `CUDAMatMulRunner.tune` times against cuBLASLt's float32 algorithms and keeps where it is faster.
///
/// Float32 accuracy on TF32 tensor cores ("split TF32"): each operand x is split into hi = tf32(x) and
/// lo = tf32(x − hi), and every product is a_hi·b_hi + a_hi·b_lo + a_lo·b_hi, three TF32 tensor-core products.
/// The tensor cores truncate as they add into an accumulator, which biases a long sum (relative error growing
/// with K, 8e-6 at K = 2048), so each slice of 32 sums into zeros and is then added to the running total in
/// rounded float32: the result is then as close to exact as cuBLASLt's float32 (about 1.5e-7 relative on
/// ResNet-50's 1×1 shapes, `bench/kernels/split_product.py`).
///
/// Two forms, both over 128 × `BN` tiles with 256 threads and K in slices of 32 loaded by `cp.async`:
/// - `mma.sync` m16n8k8 (Ampere on): 8 warps, each 64 × 32 or 32 × 32, three shared-memory stages; each
///   thread splits its own A and B fragments, reading the two k of its fragment slots as one 8-byte load (rows
///   padded to 40 floats, so a half-warp's loads hit 32 different banks).
/// - Hopper's warpgroup instructions (`wgmma` m64nNk8, sm_90a): 2 warpgroups of 64 rows, four stages; B is
///   split once per block, in place in shared memory, into hi and lo parts in the swizzled layout `wgmma`
///   reads; A is split in registers. While one slice's 12 products run, the block loads a later slice and
///   prepares the next. On ResNet-50's 1×1 shapes at batch 64 it took 3.11 ms in all against 3.88 for the
///   `mma.sync` form and 3.41 for cuBLAS strict float32 (H100).
///
/// The tile then goes through shared memory, and the bias, residual and ReLU are applied in 16-byte runs of a
/// row. Needs K a multiple of 32, N of `BN`, and 16-byte aligned operands; rows past M read zeros and are not
/// stored.
enum CUDASplitProduct {
    static let depth = 32
    static let threads = 256

    /// Shared memory of one block: for `mma.sync`, 3 stages of A (128 rows) and B (`columns` rows), 40 floats a
    /// row; for the warpgroup form, 4 stages of B's two parts (128 bytes a row) and A, and 1024 bytes to align
    /// them for the swizzle.
    static func sharedBytes(columns: Int, warpGroup: Bool = false) -> Int {
        warpGroup ? 4 * (2 * columns * depth * 4 + 128 * (depth + 8) * 4) + 1024 : 3 * (128 + columns) * (depth + 8) * 4
    }

    /// Whether the device has the warpgroup form (Hopper, compute capability 9.0).
    static func hasWarpGroupForm(architecture: Int) -> Bool { architecture == 90 }

    /// The launches of both forms at the tile widths `n` allows: `mma.sync` at 128 (where N allows) and 64
    /// columns, then the warpgroup form likewise where the device has it. A choice is remembered by its index.
    private static func variants(
        n: Int, architecture: Int, warpGroupOnly: Bool = false,
        _ launch: (_ prefix: String, _ columns: Int, _ sharedBytes: Int) -> CUDALaunch
    ) -> [CUDALaunch] {
        let widths = n % 128 == 0 ? [128, 64] : [64]
        let warpGroup = hasWarpGroupForm(architecture: architecture)
        let forms = warpGroupOnly ? (warpGroup ? [true] : []) : warpGroup ? [false, true] : [false]
        return forms.flatMap { warpGroup in
            widths.map {
                launch(warpGroup ? "wg_" : "", $0, sharedBytes(columns: $0, warpGroup: warpGroup))
            }
        }
    }

    /// The launches that compute `product`, one per tile width (64 columns, and 128 where N allows), or none
    /// where the kernel does not apply: not float32, TF32 allowed (cuBLASLt's TF32 algorithms are the fast
    /// ones then), B not transposed, alpha not 1, beta not 1 with C, an activation other than ReLU, K not a
    /// multiple of 32 or N of 64, or before Ampere (compute capability 8.0, the first with TF32 `mma.sync`).
    /// A batch only as channels-first images (`columns`). The operands must be 16-byte aligned (`aligned`).
    static func launches(_ product: CUDAMatMul, allowTF32: Bool, architecture: Int) -> [CUDALaunch] {
        let (m, n, k) = (product.m, product.n, product.k)
        guard runs(product.dtype, allowTF32: allowTF32, architecture: architecture), product.transposeB,
            product.rowStrideD == nil,
            product.alpha == 1, product.c == nil || product.beta == 1,
            product.activation == nil || product.activation == .relu, m > 0, n > 0, n % 64 == 0, k > 0,
            k % depth == 0, n <= Int(Int32.max), k <= Int(Int32.max)
        else { return [] }
        if product.transposeA { return columns(product, architecture: architecture) }
        guard product.batch == 1, (m + 127) / 128 <= 65535, m <= Int(Int32.max) else { return [] }
        let null = CUDAArgument.int64(0)
        return variants(n: n, architecture: architecture) { prefix, columns, shared in
            CUDALaunch(
                source: source(architecture: architecture), function: "kiln_split_tf32_\(prefix)product_\(columns)",
                grid: CUDADim3(n / columns, (m + 127) / 128, 1), block: CUDADim3(threads), sharedBytes: shared,
                arguments: [
                    .pointer(product.a), .pointer(product.b), product.bias.map { .pointer($0) } ?? null,
                    product.c.map { .pointer($0) } ?? null, .pointer(product.d), .int32(Int32(m)), .int32(Int32(n)),
                    .int32(Int32(k)), .int32(product.activation == .relu ? 1 : 0),
                ])
        }
    }

    /// A product whose A is transposed, each batch entry's `[K, M]` one channels-first image of M pixels
    /// (`TransposedInput` makes these from 1×1 convolutions): the warpgroup form reads A so as it loads, all the
    /// images' pixels one product of `batch`·M rows. Needs B shared by the batch, A, C and D dense one entry
    /// after another, and M a multiple of 4 (16-byte loads of one image's pixels); Hopper only.
    private static func columns(_ product: CUDAMatMul, architecture: Int) -> [CUDALaunch] {
        let (pixels, n, k) = (product.m, product.n, product.k)
        let rows = product.batch * pixels
        let single = product.batch == 1
        guard pixels % 4 == 0, single || product.strideB == 0, single || product.strideA == pixels * k,
            single || product.strideD == pixels * n, product.c == nil || single || product.strideC == pixels * n,
            (rows + 127) / 128 <= 65535, rows <= Int(Int32.max)
        else { return [] }
        let null = CUDAArgument.int64(0)
        return variants(n: n, architecture: architecture, warpGroupOnly: true) { _, columns, shared in
            CUDALaunch(
                source: source(architecture: architecture), function: "kiln_split_tf32_wg_columns_\(columns)",
                grid: CUDADim3(n / columns, (rows + 127) / 128, 1), block: CUDADim3(threads), sharedBytes: shared,
                arguments: [
                    .pointer(product.a), .pointer(product.b), product.bias.map { .pointer($0) } ?? null,
                    product.c.map { .pointer($0) } ?? null, .pointer(product.d), .int32(Int32(rows)),
                    .int32(Int32(n)), .int32(Int32(k)), .int32(product.activation == .relu ? 1 : 0),
                    .int32(Int32(pixels)),
                ])
        }
    }

    /// Whether a channels-last 1×1 convolution over `channels` input channels, `outputs` output channels and
    /// `pixels` pixels an image may read a channels-first input as a product's transposed A
    /// (`TransposedInput`): where the warpgroup form takes that product.
    static func takesColumns(
        pixels: Int, channels: Int, outputs: Int, dtype: DType, allowTF32: Bool, architecture: Int
    ) -> Bool {
        runs(dtype, allowTF32: allowTF32, architecture: architecture) && hasWarpGroupForm(architecture: architecture)
            && pixels % 4 == 0 && channels % depth == 0 && outputs % 64 == 0
    }

    /// The launches of the implicit-GEMM form for a channels-last 2-D `convolution` (X `[N, H, W, C]`, W
    /// `[M, kh, kw, C]`, Y `[N, OH, OW, M]`): row p of A is output pixel p, its columns the window's pixels'
    /// channels, gathered from X as the slices load (16 bytes at a time where C is a multiple of 32, element by
    /// element otherwise, as for a stem's 3 channels). None where it does not apply: channels-first, not
    /// float32, TF32 allowed, groups, dilations, M not a multiple of 64, an activation other than ReLU, or
    /// before Ampere.
    static func launches(_ convolution: CUDAConvolution, allowTF32: Bool, architecture: Int) -> [CUDALaunch] {
        let (x, w, y) = (convolution.inputShape, convolution.weightShape, convolution.outputShape)
        guard runs(convolution.dtype, allowTF32: allowTF32, architecture: architecture), convolution.channelsLast,
            convolution.outputStrides == nil,
            convolution.groups == 1, x.count == 4, w.count == 4, y.count == 4,
            convolution.dilations.allSatisfy({ $0 == 1 }),
            convolution.activation == nil || convolution.activation == .relu
        else { return [] }
        let (c, m, n, k) = (x[1], y[0] * y[2] * y[3], w[0], w[1] * w[2] * w[3])
        guard c > 0, w[1] == c, n > 0, n % 64 == 0, m > 0, (m + 127) / 128 <= 65535,
            m <= Int(Int32.max), k <= Int(Int32.max), x.allSatisfy({ $0 <= Int(Int32.max) })
        else { return [] }
        let null = CUDAArgument.int64(0)
        let geometry = [x[2], x[3], c, y[2], y[3], w[3]] + convolution.strides + convolution.pads
        // Channels in whole slices load 16 bytes at a time; others (a stem's 3) element by element, with a
        // table of the rows' window origins after the stages.
        let (kind, table) = c % depth == 0 ? ("conv", 0) : ("gather", 3 * 128 * 4)
        return variants(n: n, architecture: architecture) { prefix, columns, shared in
            CUDALaunch(
                source: source(architecture: architecture), function: "kiln_split_tf32_\(prefix)\(kind)_\(columns)",
                grid: CUDADim3(n / columns, (m + 127) / 128, 1), block: CUDADim3(threads),
                sharedBytes: shared + table,
                arguments: [
                    .pointer(convolution.x), .pointer(convolution.w), convolution.bias.map { .pointer($0) } ?? null,
                    convolution.residual.map { .pointer($0) } ?? null, .pointer(convolution.y), .int32(Int32(m)),
                    .int32(Int32(n)), .int32(Int32(k)), .int32(convolution.activation == .relu ? 1 : 0),
                ] + geometry.map { .int32(Int32($0)) })
        }
    }

    /// Whether the kernel computes `dtype` products on a device: strict float32 only (with TF32 allowed,
    /// cuBLASLt's and cuDNN's TF32 algorithms are the fast ones), from Ampere (compute capability 8.0, the
    /// first with TF32 `mma.sync`).
    static func runs(_ dtype: DType, allowTF32: Bool, architecture: Int) -> Bool {
        dtype == .float32 && !allowTF32 && architecture >= 80
    }

    /// Whether a convolution with parameters `p` over `channels` input channels is one the kernel takes 16
    /// bytes at a time once channels-last: one group, no dilation, channels in whole slices of 32 (what the
    /// layout pass needs to know before the shapes and the tactic are).
    static func takes(
        _ p: ConvolutionParameters, channels: Int?, dtype: DType, allowTF32: Bool, architecture: Int
    ) -> Bool {
        runs(dtype, allowTF32: allowTF32, architecture: architecture) && p.group == 1
            && p.dilations.allSatisfy { $0 == 1 } && channels.map { $0 % depth == 0 } ?? false
    }

    /// Whether every address is a multiple of 16 bytes, as the kernel's 16-byte loads and stores need.
    static func aligned(_ addresses: [UInt64]) -> Bool { addresses.allSatisfy { $0 % 16 == 0 } }

    /// The module: on Hopper compiled for sm_90a, which adds the warpgroup form's entry points.
    static func source(architecture: Int) -> CUDASource {
        hasWarpGroupForm(architecture: architecture)
            ? warpGroupSource : CUDASource(name: "split_tf32_product", code: code)
    }

    private static let warpGroupSource = CUDASource(
        name: "split_tf32_product_sm90a", code: code, architectureSpecific: true)
}
