import Foundation
import KilnIR
import Testing

@testable import KilnCUDA

/// Kiln's Hopper product kernel (`CUDAWarpGroupProduct`): which products it takes, that its source compiles
/// for sm_90a, how its tensor maps are packed, and its results against the CPU reference on fresh random
/// inputs (on a Hopper GPU), with M, N and K that leave partial tiles at every edge.
@Suite struct WarpGroupProductTests {
    /// Node facts for a float16 product of `a` x `b` (+ a row bias) on a device of `architecture`.
    static func info(_ a: [Int], _ b: [Int], dtype: DType = .float16, architecture: Int = 90) -> CUDANodeInfo {
        let n = b[1]
        return CUDANodeInfo(
            node: Node(name: "product", layer: IdentityLayer(), inputs: [], outputs: []),
            inputs: [TensorType(dtype, dims: a), TensorType(dtype, dims: b), TensorType(dtype, dims: [n])],
            outputs: [TensorType(dtype, dims: [a[0], n])], constants: [nil, nil, nil], architecture: architecture,
            multiprocessors: 132, options: CUDAOptions())
    }

    static func lower(
        _ activation: EpilogueActivation?, _ a: [Int], _ b: [Int], architecture: Int = 90
    ) throws -> [CUDAStep] {
        try CUDALinearAlgebraMatMul.lower(
            MatMulLayer(epilogue: Epilogue(activation: activation)), info(a, b, architecture: architecture)
        ).steps
    }

    /// From level 4 on the builder times the product at each tile shape (every one within the shared memory a
    /// block may take), the default first; below, the default runs.
    @Test func offersEveryTileShapeAsAnAlternativeFromLevel4() throws {
        let layer = MatMulLayer(epilogue: Epilogue(activation: .gelu(tanh: false)))
        let facts = Self.info([4096, 768], [768, 3072])
        #expect(try CUDALinearAlgebraMatMul.lower(layer, facts).alternatives.isEmpty)
        let levelFour = CUDANodeInfo(
            node: facts.node, inputs: facts.inputs, outputs: facts.outputs, constants: facts.constants,
            architecture: 90, multiprocessors: 132, options: CUDAOptions(allowTF32: false, level: 4))
        let lowering = try CUDALinearAlgebraMatMul.lower(layer, levelFour)
        let choice = try #require(lowering.alternatives[0])
        #expect(choice.launches.count == CUDAWarpGroupProduct.tileShapes.count)
        guard case .launch(let first) = lowering.steps[0] else {
            Issue.record("a launch expected")
            return
        }
        #expect(choice.launches.first == first)
        #expect(Set(choice.launches.map(\.source.name)).count == choice.launches.count)
        #expect(choice.launches.allSatisfy { $0.sharedBytes <= 227 << 10 })
    }

    @Test func takesLargeHopperProductsWithActivationsCuBLASLtLacks() throws {
        let steps = try Self.lower(.gelu(tanh: false), [4096, 768], [768, 3072])
        guard steps.count == 1, case .launch(let launch) = steps[0] else {
            Issue.record("one launch expected, got \(steps)")
            return
        }
        #expect(launch.function == "kiln_wg_product" && launch.source.name.hasPrefix("wg_product_act6_tb1_"))
        #expect(launch.source.architectureSpecific)
        #expect(launch.grid.x == 132 && launch.block.x == 384)
        #expect(launch.sharedBytes == CUDAWarpGroupProduct.sharedBytes(columns: 256, stages: 4))
        #expect(launch.sharedBytes <= 227 << 10)
        guard case .tensorMap(let mapA) = launch.arguments[0], case .tensorMap(let mapB) = launch.arguments[1] else {
            Issue.record("the first two arguments are tensor maps")
            return
        }
        #expect(
            mapA
                == CUDATensorMap(
                    .input(0), dtype: .float16, rows: 4096, columns: 768, rowStride: 768, boxRows: 128, boxColumns: 64))
        #expect(
            mapB
                == CUDATensorMap(
                    .input(1), dtype: .float16, rows: 768, columns: 3072, rowStride: 3072, boxRows: 64, boxColumns: 64))
        #expect(launch.arguments[2] == .pointer(.input(2)))

        // cuBLASLt keeps what it finishes itself, small products, other architectures and unaligned sizes.
        for (activation, a, b, architecture) in [
            (EpilogueActivation.relu, [4096, 768], [768, 3072], 90),
            (.gelu(tanh: false), [128, 768], [768, 3072], 90),
            (.gelu(tanh: false), [4096, 768], [768, 3072], 80), (.silu, [4096, 770], [770, 3072], 90),
        ] {
            let steps = try Self.lower(activation, a, b, architecture: architecture)
            guard case .matMul = steps.first else {
                Issue.record("\(activation) \(a) x \(b) on sm_\(architecture) should stay with cuBLASLt")
                continue
            }
        }
        #expect(try Self.lower(nil, [4096, 768], [768, 3072]).count == 1)
    }

    @Test func packsTensorMapsAt64Bytes() throws {
        let map = CUDATensorMap(
            .input(0), dtype: .float16, rows: 4, columns: 8, rowStride: 8, boxRows: 4, boxColumns: 8)
        let packed = try KernelArgumentPacker.pack(
            [.int32(3), .tensorMap(map), .int32(5)], resolve: { _ in 0x1000 },
            encode: { encoded, address in
                #expect(encoded == map && address == 0x1000)
                return (0..<128).map { UInt8($0) }
            })
        #expect(packed.offsets == [0, 64, 192])
        #expect(Array(packed.bytes[64..<192]) == (0..<128).map { UInt8($0) })
        #expect(throws: KilnError.self) { try KernelArgumentPacker.pack([.tensorMap(map)], resolve: { _ in 0 }) }
    }

    @Test func compilesForSm90a() throws {
        guard let nvrtc = try? NVRTC.shared() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): the warpgroup product was NOT compile-checked") {
                Issue.record("NVRTC unavailable")
            }
            return
        }
        for (dtype, activation, transposedB) in [
            (DType.float16, EpilogueActivation.gelu(tanh: false), true), (.bfloat16, .silu, false),
        ] {
            let index = CUDALinearAlgebraEpilogue.activationIndex(activation)
            for tile in CUDAWarpGroupProduct.tileShapes {
                let source = CUDAWarpGroupProduct.source(
                    dtype, activation: index, transposedB: transposedB, tile: tile)
                let cubin = try nvrtc.compile(source, architecture: 90)
                #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(dtype) \(tile)")
            }
        }
    }

    /// Partial tiles in M (2100 = 16 x 128 + 52), N (776 = 3 x 256 + 8) and K (200 = 3 x 64 + 8), both layouts
    /// of B, and enough tiles per block to wrap the ring of buffers.
    static let cases: [GPUCase] = {
        var cases: [GPUCase] = []
        for dtype in [DType.float16, .bfloat16] {
            let (rtol, atol) = dtype == .float16 ? (4e-3, 2e-3) : (3e-2, 1.5e-2)
            func add(_ name: String, _ layer: any Layer, _ inputs: [InputSpec]) {
                cases.append(GPUCase(name: name, layer: layer, inputs: inputs, rtol: rtol, atol: atol, dtype: dtype))
            }
            add(
                "warpgroup product, erf GELU, B [K, N]",
                MatMulLayer(epilogue: Epilogue(activation: .gelu(tanh: false))),
                [.float([2100, 200], -2...2), .float([200, 776], -0.2...0.2), .float([776])])
            add(
                "warpgroup product, SiLU, B [N, K], no bias",
                MatMulLayer(transposeB: true, epilogue: Epilogue(activation: .silu)),
                [.float([1100, 136], -2...2), .float([520, 136], -0.2...0.2)])
            add(
                "warpgroup product, clip, batched A over one B",
                MatMulLayer(epilogue: Epilogue(activation: .clip(min: -0.5, max: 0.5))),
                [.float([4, 300, 768], -1...1), .float([768, 1024], -0.05...0.05), .float([1024])])
        }
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUReference(_ c: GPUCase) throws {
        if try sharedGPU().context.computeCapability != 90 {
            withKnownIssue("not a Hopper GPU: cuBLASLt ran these products, the warpgroup kernel was NOT tested") {
                Issue.record("needs sm_90")
            }
        }
        try expectGPUMatchesCPU(c)
    }
}
