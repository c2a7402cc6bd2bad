import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Kiln's int8 implicit-GEMM convolution for Hopper (`CUDAInt8WarpGroupConvolution`): which convolutions it
/// takes and how it tiles them (no GPU), that its variants compile for sm_90a (with NVRTC), and its int8 outputs
/// against an exact integer convolution and the same requantization in double precision on fresh random inputs
/// (on a Hopper GPU): at most one unit apart (a float32 rounding tie), and rarely even that.
@Suite struct Int8WarpGroupConvolutionTests {
    static func window(
        _ images: Int, _ size: Int, kernel: Int, stride: Int = 1, pad: Int? = nil
    ) -> CUDAIm2colWindow {
        let p = pad ?? kernel / 2
        return CUDAIm2colWindow(
            images: images, height: size, width: size, kernel: [kernel, kernel], strides: [stride, stride],
            padsBegin: [p, p], padsEnd: [p, p], dilations: [1, 1])
    }

    static let operands = CUDAInt8WarpGroupConvolution.Operands(
        input: .input(0), weights: .input(1), alpha: .input(2), beta: .input(3), residual: nil, output: .output(0))

    @Test func takesHopperConvolutionsOfWholeChannelBlocks() throws {
        func launch(_ window: CUDAIm2colWindow, _ c: Int, _ cout: Int, architecture: Int = 90) -> CUDALaunch? {
            CUDAInt8WarpGroupConvolution.launch(
                Self.operands, window: window, channels: c, outputChannels: cout, residualScale: 0, relu: true,
                architecture: architecture, multiprocessors: 132)
        }
        #expect(launch(Self.window(2, 14, kernel: 3), 64, 64, architecture: 80) == nil)
        #expect(launch(Self.window(2, 14, kernel: 3), 48, 64) == nil)
        #expect(launch(Self.window(2, 14, kernel: 3), 64, 72) == nil)

        let three = try #require(launch(Self.window(64, 56, kernel: 3, stride: 2), 128, 128))
        guard case .tensorMap(let input) = three.arguments[0], case .tensorMap(let weights) = three.arguments[1] else {
            Issue.record("tensor maps expected first, got \(three.arguments)")
            return
        }
        #expect(input.window?.output == [28, 28] && input.boxColumns == 128 && input.swizzleBytes == 128)
        #expect(weights.rows == 128 && weights.columns == 9 * 128 && weights.window == nil)
        #expect(three.source.architectureSpecific && three.block.x == 288 && three.grid.x == 132)
        #expect(three.sharedBytes <= CUDAInt8WarpGroupConvolution.sharedLimit)

        // 64-column tiles run two blocks an SM: twice the grid, half the shared memory each (less 1 KiB).
        let narrow = try #require(launch(Self.window(64, 56, kernel: 3), 64, 64))
        #expect(narrow.grid.x == 264 && narrow.source.code.contains("__launch_bounds__(288, 2)"))
        #expect(narrow.sharedBytes <= (CUDAInt8WarpGroupConvolution.sharedLimit + 1024) / 2 - 1024)

        // A 1x1 stride-1 convolution reads its input as a plain matrix; 64 channels take 64-byte rows.
        let one = try #require(launch(Self.window(64, 56, kernel: 1), 64, 256))
        guard case .tensorMap(let plain) = one.arguments[0] else {
            Issue.record("a tensor map expected first")
            return
        }
        #expect(plain.window == nil && plain.boxColumns == 64 && plain.swizzleBytes == 64)
        #expect(one.function.hasSuffix("_0101"), "no im2col, ReLU, no residual, a short reduction: \(one.function)")
    }

    /// The builder times every tile width that divides the output channels, the wave model's pick first, and
    /// 128-column tiles two blocks an SM.
    @Test func offersEveryTileWidthThatDivides() throws {
        func launches(_ cout: Int) -> [CUDALaunch] {
            CUDAInt8WarpGroupConvolution.launches(
                Self.operands, window: Self.window(64, 56, kernel: 3), channels: 64, outputChannels: cout,
                residualScale: 0, relu: true, architecture: 90, multiprocessors: 132)
        }
        let wide = launches(256)
        let first = try #require(
            CUDAInt8WarpGroupConvolution.launch(
                Self.operands, window: Self.window(64, 56, kernel: 3), channels: 64, outputChannels: 256,
                residualScale: 0, relu: true, architecture: 90, multiprocessors: 132))
        #expect(wide.first == first)
        #expect(Set(wide.map { $0.function.split(separator: "_")[3] }) == ["256", "128", "64"])
        #expect(wide.count == 4)
        let paired = try #require(wide.last)
        #expect(paired.function.hasPrefix("kiln_i8_conv_128_") && paired.function.hasSuffix("_b2"))
        #expect(paired.grid.x == 264 && paired.source.code.contains("__launch_bounds__(288, 2)"))
        #expect(launches(192).count == 1, "only 64-column tiles divide 192 channels")
        #expect(launches(128).count == 3)
        // A 1x1 expansion from 64 channels leads with the paired tiles.
        let expansion = CUDAInt8WarpGroupConvolution.launches(
            Self.operands, window: Self.window(64, 56, kernel: 1), channels: 64, outputChannels: 256,
            residualScale: 0.5, relu: true, architecture: 90, multiprocessors: 132)
        #expect(expansion.first?.function.hasSuffix("_b2") == true && expansion.count == 4)
    }

    /// The tile widths the wave model picks on ResNet-50's batch-64 shapes are the ones
    /// `bench/kernels/int8_conv.py` timed fastest on an H100.
    @Test func picksTheMeasuredTileWidths() {
        let cases: [(rows: Int, channels: Int, columns: Int)] = [
            (12544, 256, 256), (3136, 512, 128), (12544, 512, 128), (12544, 1024, 256), (50176, 512, 256),
            (3136, 2048, 256), (200704, 256, 256), (200704, 128, 128), (200704, 64, 64),
        ]
        for c in cases {
            #expect(
                CUDAInt8WarpGroupConvolution.tileColumns(rows: c.rows, outputChannels: c.channels, multiprocessors: 132)
                    == c.columns, "\(c)")
        }
        for columns in [256, 128, 64] {
            for depth in [128, 64] {
                for residual in [false, true] {
                    let blocks = CUDAInt8WarpGroupConvolution.blocksPerMultiprocessor(columns: columns)
                    let stages = CUDAInt8WarpGroupConvolution.fittingStages(
                        columns: columns, depth: depth, residual: residual, blocks: blocks)
                    #expect(stages >= 3)
                    #expect(
                        CUDAInt8WarpGroupConvolution.sharedBytes(
                            columns: columns, depth: depth, stages: stages, residual: residual)
                            <= (CUDAInt8WarpGroupConvolution.sharedLimit + 1024) / blocks - 1024)
                }
            }
        }
    }

    @Test func compilesForSm90a() throws {
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): the int8 convolution was NOT compile-checked") {
                Issue.record("NVRTC unavailable")
            }
            return
        }
        for (columns, depth, im2col, residual, small, blocks) in [
            (256, 128, true, false, false, 1), (64, 64, false, true, true, 2), (128, 128, true, true, false, 1),
            (128, 64, false, true, true, 2),
        ] {
            let source = CUDAInt8WarpGroupConvolution.Variant(
                columns: columns, depth: depth, stages: 3, im2col: im2col, relu: true, residual: residual,
                small: small, blocks: blocks
            ).source
            let cubin = try nvrtc.compile(source, architecture: 90)
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(source.name)")
        }
    }

    /// One convolution to run: NHWC input of `images` x `size` x `size` x `channels`.
    struct Case: CustomStringConvertible, Sendable {
        var images: Int
        var size: Int
        var channels: Int
        var outputChannels: Int
        var kernel: Int
        var stride: Int
        var residual: Bool
        var relu: Bool
        var description: String {
            "\(images)x\(size)x\(size)x\(channels) -> \(outputChannels), \(kernel)x\(kernel)/\(stride)"
                + (residual ? " + residual" : "") + (relu ? ", ReLU" : "")
        }
    }

    /// 3x3 with 64 and 128 channels (both row widths), stride 2, a 1x1 as a plain matrix and as im2col (stride
    /// 2), a residual with and without ReLU, and pixel counts that leave a partial last tile.
    static let cases: [Case] = [
        Case(images: 2, size: 9, channels: 64, outputChannels: 64, kernel: 3, stride: 1, residual: false, relu: true),
        Case(
            images: 3, size: 11, channels: 128, outputChannels: 192, kernel: 3, stride: 2, residual: false, relu: true),
        Case(images: 2, size: 13, channels: 192, outputChannels: 256, kernel: 1, stride: 1, residual: true, relu: true),
        Case(
            images: 2, size: 10, channels: 64, outputChannels: 128, kernel: 1, stride: 2, residual: false, relu: false),
        Case(images: 1, size: 7, channels: 256, outputChannels: 512, kernel: 3, stride: 1, residual: true, relu: false),
    ]

    /// The int32 sums of `c`'s convolution of NHWC `x` with `[Cout, kh, kw, C]` weights `w`, NHWC.
    static func exactConvolution(_ c: Case, x: [Int8], w: [Int8]) -> [Int] {
        let out = (c.size + 2 * (c.kernel / 2) - c.kernel) / c.stride + 1
        let reduction = c.kernel * c.kernel * c.channels
        return (0..<(c.images * out * out * c.outputChannels)).map { index in
            let o = index % c.outputChannels
            let pixel = index / c.outputChannels
            let (n, oh, ow) = (pixel / (out * out), pixel / out % out, pixel % out)
            var acc = 0
            for tap in 0..<(c.kernel * c.kernel) {
                let (r, s) = (tap / c.kernel, tap % c.kernel)
                let (ih, iw) = (oh * c.stride - c.kernel / 2 + r, ow * c.stride - c.kernel / 2 + s)
                guard (0..<c.size).contains(ih), (0..<c.size).contains(iw) else { continue }
                let xBase = ((n * c.size + ih) * c.size + iw) * c.channels
                let wBase = o * reduction + tap * c.channels
                for k in 0..<c.channels { acc += Int(x[xBase + k]) * Int(w[wBase + k]) }
            }
            return acc
        }
    }

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheExactReference(_ c: Case) throws {
        let device = try sharedGPU()
        let context = device.context
        guard context.computeCapability == 90, context.hasIm2colTensorMaps else {
            withKnownIssue("not a Hopper GPU: the int8 warpgroup convolution was NOT run") {
                Issue.record("needs sm_90")
            }
            return
        }
        let seed = SeededGenerator.testSeed()
        var random = SeededGenerator(seed: seed)
        let window = Self.window(c.images, c.size, kernel: c.kernel, stride: c.stride)
        let (ho, wo) = (window.output[0], window.output[1])
        let m = c.images * ho * wo
        let reduction = c.kernel * c.kernel * c.channels
        let x = (0..<(c.images * c.size * c.size * c.channels)).map { _ in Int8.random(in: -128...127, using: &random) }
        let w = (0..<(c.outputChannels * reduction)).map { _ in Int8.random(in: -127...127, using: &random) }
        // Scales that spread the outputs over the int8 range, some of them clipped.
        let alpha = (0..<c.outputChannels).map { _ in
            Float.random(in: 0.5...1.5, using: &random) * 60 / (Float(reduction).squareRoot() * 5500)
        }
        let beta = (0..<c.outputChannels).map { _ in Float.random(in: -20...20, using: &random) }
        let residual = (0..<(m * c.outputChannels)).map { _ in Int8.random(in: -128...127, using: &random) }
        let residualScale: Float = 0.75

        var operands = Self.operands
        if c.residual { operands.residual = .input(4) }
        // Every tile width the builder may time (`launches`), the estimate's first.
        let launches = CUDAInt8WarpGroupConvolution.launches(
            operands, window: window, channels: c.channels, outputChannels: c.outputChannels,
            residualScale: residualScale, relu: c.relu, architecture: 90, multiprocessors: context.multiprocessors)
        try #require(!launches.isEmpty)

        let buffers = try [x.count, w.count, 4 * alpha.count, 4 * beta.count, residual.count].map {
            try context.allocate(bytes: $0)
        }
        let output = try context.allocate(bytes: m * c.outputChannels)
        let stream = try context.makeStream()
        func put<T>(_ values: [T], _ index: Int) throws {
            try values.withUnsafeBytes {
                try stream.copy(toDevice: buffers[index].address, from: $0.baseAddress!, bytes: $0.count)
            }
        }
        try put(x, 0)
        try put(w, 1)
        try put(alpha, 2)
        try put(beta, 3)
        try put(residual, 4)
        let cache = CUDAModuleCache(context: context)
        try cache.prepare(launches.map(\.source))
        func run(_ launch: CUDALaunch) throws -> [Int8] {
            try stream.fill(device: output.address, byte: 0x55, bytes: m * c.outputChannels)
            let function = try cache.module(for: launch.source).function(launch.function)
            try function.setMaxDynamicSharedMemory(launch.sharedBytes)
            let prepared = try function.prepare(
                grid: launch.grid, block: launch.block, sharedBytes: launch.sharedBytes, arguments: launch.arguments,
                resolve: { operand in
                    switch operand {
                    case .input(let i): return buffers[i].address
                    default: return output.address
                    }
                })
            try prepared.enqueue(on: stream)
            var y = [Int8](repeating: 0, count: m * c.outputChannels)
            try y.withUnsafeMutableBytes {
                try stream.copy(toHost: $0.baseAddress!, from: output.address, bytes: $0.count)
            }
            try stream.synchronize()
            return y
        }
        let y = try run(launches[0])
        for other in launches.dropFirst() {
            #expect(try run(other) == y, "\(c): \(other.function) differs from \(launches[0].function)")
        }

        let sums = Self.exactConvolution(c, x: x, w: w)
        try #require(sums.count == y.count, "\(c): the reference has \(sums.count) outputs, the kernel \(y.count)")
        let differences = zip(y, sums).enumerated().map { index, pair in
            let o = index % c.outputChannels
            var value = Double(pair.1) * Double(alpha[o]) + Double(beta[o])
            if c.residual { value += Double(residualScale) * Double(residual[index]) }
            let expected = Int(min(max(value.rounded(.toNearestOrEven), c.relu ? 0 : -128), 127))
            return abs(Int(pair.0) - expected)
        }
        let worst = differences.max() ?? 0
        let off = differences.filter { $0 > 0 }.count
        let total = m * c.outputChannels
        #expect(worst <= 1, "\(c): an output \(worst) units from the reference (seed \(seed))")
        #expect(off * 200 <= total, "\(c): \(off) of \(total) outputs off by one (seed \(seed))")
    }
}
