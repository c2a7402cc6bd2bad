import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Kiln's split-TF32 float32 product (`CUDASplitProduct`): which products it takes, its results against a
/// double-precision reference on fresh random inputs (partial row tiles, both tile widths, bias, residual,
/// ReLU, long K), and the tactic timer launching it beside cuBLASLt without rejecting it.
@Suite struct SplitProductTests {
    let seed = SeededGenerator.testSeed()

    static func product(_ m: Int, _ n: Int, _ k: Int, residual: Bool = true, relu: Bool = true) -> CUDAMatMul {
        var step = CUDAMatMul(
            a: .input(0), b: .input(1), bias: .input(2), d: .output(0), m: m, n: n, k: k, transposeB: true,
            activation: relu ? .relu : nil)
        if residual {
            step.c = .input(3)
            step.beta = 1
        }
        return step
    }

    /// `batch` channels-first images `[k, pixels]` as A transposed, times B `[n, k]` shared by all, with bias,
    /// residual and ReLU: a 1×1 convolution as `TransposedInput` lowers it.
    static func images(_ batch: Int, pixels: Int, _ n: Int, _ k: Int) -> CUDAMatMul {
        var step = product(pixels, n, k)
        step.transposeA = true
        step.batch = batch
        (step.strideA, step.strideC, step.strideD) = (pixels * k, pixels * n, pixels * n)
        return step
    }

    @Test func takesStrictFloat32ProductsOfWholeSlices() {
        let launches = CUDASplitProduct.launches(Self.product(300, 256, 96), allowTF32: false, architecture: 80)
        #expect(launches.map(\.function) == ["kiln_split_tf32_product_128", "kiln_split_tf32_product_64"])
        #expect(launches.map(\.grid) == [CUDADim3(2, 3, 1), CUDADim3(4, 3, 1)])
        #expect(launches.allSatisfy { $0.sharedBytes <= 227 << 10 && $0.block == CUDADim3(256) })
        #expect(launches[0].arguments[3] == .pointer(.input(3)) && !launches[0].source.architectureSpecific)
        // Hopper adds the warpgroup form, from the sm_90a module that holds both.
        let hopper = CUDASplitProduct.launches(Self.product(300, 256, 96), allowTF32: false, architecture: 90)
        #expect(
            hopper.map(\.function) == [
                "kiln_split_tf32_product_128", "kiln_split_tf32_product_64", "kiln_split_tf32_wg_product_128",
                "kiln_split_tf32_wg_product_64",
            ])
        #expect(hopper.allSatisfy { $0.sharedBytes <= 227 << 10 && $0.source.architectureSpecific })
        #expect(hopper[2].sharedBytes == CUDASplitProduct.sharedBytes(columns: 128, warpGroup: true))
        let plain = CUDASplitProduct.launches(
            Self.product(300, 192, 96, residual: false, relu: false), allowTF32: false, architecture: 80)
        #expect(plain.map(\.function) == ["kiln_split_tf32_product_64"])
        #expect(plain.first?.arguments[3] == .int64(0) && plain.first?.arguments[8] == .int32(0))

        var others: [(CUDAMatMul, Bool, Int)] = [
            (Self.product(300, 256, 96), true, 90), (Self.product(300, 256, 96), false, 75),
            (Self.product(300, 96, 96), false, 90), (Self.product(300, 256, 40), false, 90),
        ]
        var half = Self.product(300, 256, 96)
        half.dtype = .float16
        var batched = Self.product(300, 256, 96)
        batched.batch = 2
        var gelu = Self.product(300, 256, 96)
        gelu.activation = .gelu(tanh: true)
        var notTransposed = Self.product(300, 256, 96)
        notTransposed.transposeB = false
        var scaled = Self.product(300, 256, 96)
        scaled.alpha = 0.5
        others += [half, batched, gelu, notTransposed, scaled].map { ($0, false, 90) }
        for (step, tf32, architecture) in others {
            #expect(
                CUDASplitProduct.launches(step, allowTF32: tf32, architecture: architecture).isEmpty,
                "\(step.m)x\(step.n)x\(step.k) \(step.dtype) tf32 \(tf32) sm_\(architecture)")
        }
        #expect(CUDASplitProduct.aligned([0x1000, 0x2010]) && !CUDASplitProduct.aligned([0x1000, 0x1004]))

        // A transposed, one channels-first image a batch entry: the warpgroup form only, over every image's rows.
        let images = Self.images(3, pixels: 36, 256, 96)
        let columns = CUDASplitProduct.launches(images, allowTF32: false, architecture: 90)
        #expect(columns.map(\.function) == ["kiln_split_tf32_wg_columns_128", "kiln_split_tf32_wg_columns_64"])
        #expect(columns.first?.grid == CUDADim3(2, 1, 1) && columns.first?.arguments[5] == .int32(108))
        #expect(columns.first?.arguments.last == .int32(36))
        let oddPixels = Self.images(3, pixels: 35, 256, 96)
        var ownWeights = images
        ownWeights.strideB = 256 * 96
        for (step, architecture) in [(images, 80), (oddPixels, 90), (ownWeights, 90)] {
            #expect(CUDASplitProduct.launches(step, allowTF32: false, architecture: architecture).isEmpty)
        }

        // Convolutions: channels in whole slices load 16 bytes at a time, a stem's 3 element by element.
        func convolution(_ c: Int, _ window: Int, channelsLast: Bool = true) -> CUDAConvolution {
            CUDAConvolution(
                x: .input(0), w: .input(1), bias: .input(2), residual: nil, y: .output(0),
                inputShape: [8, c, 56, 56], weightShape: [64, c, window, window], outputShape: [8, 64, 28, 28],
                pads: [window / 2, window / 2], strides: [2, 2], dilations: [1, 1], groups: 1, activation: .relu,
                channelsLast: channelsLast)
        }
        let windows = CUDASplitProduct.launches(convolution(64, 3), allowTF32: false, architecture: 90)
        #expect(windows.map(\.function) == ["kiln_split_tf32_conv_64", "kiln_split_tf32_wg_conv_64"])
        #expect(windows.first?.arguments.count == 19 && windows.first?.arguments[7] == .int32(576))
        let stem = CUDASplitProduct.launches(convolution(3, 7), allowTF32: false, architecture: 90)
        #expect(stem.map(\.function) == ["kiln_split_tf32_gather_64", "kiln_split_tf32_wg_gather_64"])
        #expect(
            stem.map(\.sharedBytes)
                == [false, true].map { CUDASplitProduct.sharedBytes(columns: 64, warpGroup: $0) + 1536 })
        #expect(
            CUDASplitProduct.launches(convolution(64, 3, channelsLast: false), allowTF32: false, architecture: 90)
                .isEmpty)
    }

    /// Runs each of `launches` once on `inputs` (operands 0-3 in order; nil: absent, a null address), its output
    /// first filled with NaNs so rows a launch leaves unwritten show, and returns each one's relative L2 error
    /// against `expected`.
    static func errors(
        of launches: [CUDALaunch], _ device: CUDADevice, inputs: [[Float]?], expected: [Double]
    ) throws -> [Double] {
        let context = device.context
        let timer = try CUDATacticTimer(context: context)
        let buffers = try inputs.map { try $0.map { try timer.upload(context, $0) } }
        let output = try context.allocate(bytes: expected.count * 4)
        var addresses: [CUDAOperand: UInt64] = [.output(0): output.address]
        for (i, buffer) in buffers.enumerated() { addresses[.input(i)] = buffer?.address ?? 0 }
        return try launches.map { launch in
            let prepared = try launch.prepare(
                try device.modules.function(for: launch), resolve: { addresses[$0] ?? 0 })
            try timer.stream.fill(device: output.address, byte: 0xFF, bytes: expected.count * 4)
            try prepared.enqueue(on: timer.stream)
            try timer.stream.synchronize()
            let got = try timer.download(output, count: expected.count)
            var (difference, norm) = (0.0, 0.0)
            for (value, e) in zip(got, expected) {
                difference += (Double(value) - e) * (Double(value) - e)
                norm += e * e
            }
            return (difference / norm).squareRoot()
        }
    }

    /// Runs each launch of the product on random data and compares with double-precision math.
    @Test(.enabled(if: gpuUsable), arguments: [(300, 256, 96, true), (130, 192, 1024, false), (260, 128, 2048, true)])
    func matchesDoublePrecision(_ m: Int, _ n: Int, _ k: Int, _ residual: Bool) throws {
        let device = try sharedGPU()
        let context = device.context
        var rng = SeededGenerator(seed: seed)
        func random(_ count: Int, _ range: ClosedRange<Float>) -> [Float] {
            (0..<count).map { _ in Float.random(in: range, using: &rng) }
        }
        let a = random(m * k, 0...2)
        let b = random(n * k, -1...1).map { $0 / Float(k).squareRoot() }
        let bias = random(n, -1...1)
        let r = residual ? random(m * n, -1...1) : []
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias[j]) + (residual ? Double(r[i * n + j]) : 0)
                for p in 0..<k { sum += Double(a[i * k + p]) * Double(b[j * k + p]) }
                expected[i * n + j] = max(sum, 0)
            }
        }
        let launches = CUDASplitProduct.launches(
            Self.product(m, n, k, residual: residual), allowTF32: false, architecture: context.computeCapability)
        #expect(!launches.isEmpty)
        let errors = try Self.errors(
            of: launches, device, inputs: [a, b, bias, residual ? r : nil], expected: expected)
        for (launch, error) in zip(launches, errors) {
            #expect(error < 1e-6, "\(launch.function) \(m)x\(n)x\(k): relative error \(error) (seed \(seed))")
            print("split-TF32 product \(launch.function) \(m)x\(n)x\(k) residual \(residual): error \(error)")
        }
    }

    /// The warpgroup form reading channels-first images (Hopper): 3 images of 36 pixels, so tiles hold pixels of
    /// several images and the last is partial, against double precision.
    @Test(.enabled(if: gpuUsable)) func readsChannelsFirstImagesOnHopper() throws {
        let device = try sharedGPU()
        let context = device.context
        let (batch, pixels, n, k) = (3, 36, 128, 96)
        let launches = CUDASplitProduct.launches(
            Self.images(batch, pixels: pixels, n, k), allowTF32: false, architecture: context.computeCapability)
        guard CUDASplitProduct.hasWarpGroupForm(architecture: context.computeCapability) else {
            #expect(launches.isEmpty)
            print("split-TF32 channels-first images: not Hopper, no launches (as expected)")
            return
        }
        var rng = SeededGenerator(seed: seed)
        func random(_ count: Int, _ range: ClosedRange<Float>) -> [Float] {
            (0..<count).map { _ in Float.random(in: range, using: &rng) }
        }
        let x = random(batch * k * pixels, 0...2)
        let b = random(n * k, -1...1).map { $0 / Float(k).squareRoot() }
        let bias = random(n, -1...1)
        let r = random(batch * pixels * n, -1...1)
        var expected = [Double](repeating: 0, count: batch * pixels * n)
        for image in 0..<batch {
            for p in 0..<pixels {
                let row = image * pixels + p
                for j in 0..<n {
                    var sum = Double(bias[j]) + Double(r[row * n + j])
                    for c in 0..<k { sum += Double(x[(image * k + c) * pixels + p]) * Double(b[j * k + c]) }
                    expected[row * n + j] = max(sum, 0)
                }
            }
        }
        #expect(launches.count == 2)
        let errors = try Self.errors(of: launches, device, inputs: [x, b, bias, r], expected: expected)
        for (launch, error) in zip(launches, errors) {
            #expect(error < 1e-6, "\(launch.function): relative error \(error) (seed \(seed))")
            print("split-TF32 channels-first images \(launch.function): error \(error)")
        }
    }

    /// The implicit-GEMM form against double precision: channels-last 3×3 windows at strides 2 and 1 with
    /// padding, partial row tiles, bias and ReLU, with and without a residual; and a stem's 7×7 window over 3
    /// channels (loaded element by element, K = 147 padded to whole slices).
    @Test(
        .enabled(if: gpuUsable),
        arguments: [
            (2, 9, 32, 64, false, 3, 2), (3, 14, 64, 128, true, 3, 2), (2, 23, 3, 64, false, 7, 2),
            (2, 11, 64, 128, true, 3, 1),
        ])
    func convolutionMatchesDoublePrecision(
        _ images: Int, _ size: Int, _ c: Int, _ m: Int, _ residual: Bool, _ window: Int, _ stride: Int
    ) throws {
        let device = try sharedGPU()
        let context = device.context
        var rng = SeededGenerator(seed: seed)
        func random(_ count: Int, _ range: ClosedRange<Float>) -> [Float] {
            (0..<count).map { _ in Float.random(in: range, using: &rng) }
        }
        let pad = window / 2
        let out = (size + 2 * pad - window) / stride + 1
        let x = random(images * size * size * c, 0...2)  // [N, H, W, C]
        let taps = window * window
        let w = random(m * taps * c, -1...1).map { $0 / Float(taps * c).squareRoot() }  // [M, kh, kw, C]
        let bias = random(m, -1...1)
        let pixels = images * out * out
        let r = residual ? random(pixels * m, -1...1) : []
        var expected = [Double](repeating: 0, count: pixels * m)
        for n in 0..<images {
            for oy in 0..<out {
                for ox in 0..<out {
                    let p = (n * out + oy) * out + ox
                    for j in 0..<m {
                        var sum = Double(bias[j]) + (residual ? Double(r[p * m + j]) : 0)
                        for ky in 0..<window {
                            for kx in 0..<window {
                                let (iy, ix) = (oy * stride - pad + ky, ox * stride - pad + kx)
                                guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                                for ch in 0..<c {
                                    sum +=
                                        Double(x[((n * size + iy) * size + ix) * c + ch])
                                        * Double(w[((j * window + ky) * window + kx) * c + ch])
                                }
                            }
                        }
                        expected[p * m + j] = max(sum, 0)
                    }
                }
            }
        }
        let step = CUDAConvolution(
            x: .input(0), w: .input(1), bias: .input(2), residual: residual ? .input(3) : nil, y: .output(0),
            inputShape: [images, c, size, size], weightShape: [m, c, window, window],
            outputShape: [images, m, out, out], pads: [pad, pad], strides: [stride, stride], dilations: [1, 1],
            groups: 1,
            activation: .relu, channelsLast: true)
        let launches = CUDASplitProduct.launches(step, allowTF32: false, architecture: context.computeCapability)
        let forms = CUDASplitProduct.hasWarpGroupForm(architecture: context.computeCapability) ? 2 : 1
        #expect(launches.count == (m % 128 == 0 ? 2 : 1) * forms)
        let errors = try Self.errors(
            of: launches, device, inputs: [x, w, bias, residual ? r : nil], expected: expected)
        for (launch, error) in zip(launches, errors) {
            #expect(
                error < 1e-6, "\(launch.function) \(images)x\(size)x\(size)x\(c) -> \(m): error \(error) (seed \(seed))"
            )
            print("split-TF32 convolution \(launch.function) \(images)x\(size)x\(size)x\(c) -> \(m): error \(error)")
        }
    }

    /// The tactic timer launches the kernels beside cuBLASLt, checks them against the host reference, and a
    /// choice of one (rank −1 − i) loads again from the remembered rank.
    @Test(.enabled(if: gpuUsable)) func tunerTimesTheKernelsBesideCuBLASLt() throws {
        let device = try sharedGPU()
        let library = try CUBLASLt()
        let step = Self.product(4096, 256, 512)
        func runner() throws -> CUDAMatMulRunner {
            try CUDAMatMulRunner(
                step: step, library: library, allowTF32: false, candidates: 4,
                kernels: .splitTF32(modules: device.modules, allowTF32: false))
        }
        let tuned = try runner()
        let outcome = try tuned.tune(context: device.context, runs: 2)
        #expect(outcome.rejected == 0 && outcome.launched >= 3, "\(outcome)")
        print(
            "split-TF32 product in the tactic timer: \(outcome), kernel chosen: \(tuned.kernel?.launch.function ?? "none")"
        )
        library.tuningLock.withLock { library.tunedRanks[tuned.signature] = -2 }
        let forced = try runner()
        #expect(try forced.tune(context: device.context, measure: false).rank == -2)
        #expect(forced.kernel?.launch.function == "kiln_split_tf32_product_64")
    }
}
