import Foundation
import KilnIR
import Testing

@testable import KilnCPU
@testable import KilnCUDA

/// A node info for `layer` with float32 inputs of `shapes` (nil: absent) and outputs from the layer's own type
/// inference; `constants` gives constant inputs by index.
private func info(
    _ layer: any Layer, _ shapes: [[Int]?], dtype: DType = .float32, outputs: [String] = ["y"],
    constants: [Int: Tensor] = [:]
) throws -> CUDANodeInfo {
    let types = shapes.map { $0.map { TensorType(dtype, dims: $0) } }
    let layerInputs: [LayerInput] = types.enumerated().map { i, t in
        t == nil ? LayerInput.absent : LayerInput(type: t.map { .tensor($0) }, constant: constants[i])
    }
    let inferred = try layer.inferTypes(layerInputs).prefix(outputs.count).map { v -> TensorType in
        guard case .tensor(let t)? = v else { throw KilnError.runtime("no output type") }
        return t
    }
    let node = Node(
        name: "n", layer: layer, inputs: shapes.indices.map { shapes[$0] == nil ? "" : "i\($0)" }, outputs: outputs)
    return CUDANodeInfo(
        node: node, inputs: types, outputs: inferred, constants: shapes.indices.map { constants[$0] },
        architecture: 90, options: CUDAOptions())
}

private func lower(_ info: CUDANodeInfo) throws -> CUDALowering {
    guard let lowering = CUDALoweringRegistry.all[info.node.kind] else {
        throw KilnError.runtime("no lowering for \(info.node.kind)")
    }
    return try lowering(info)
}

private func onlyLaunch(_ lowering: CUDALowering) throws -> CUDALaunch {
    guard lowering.steps.count == 1, case .launch(let launch) = lowering.steps[0] else {
        throw KilnError.runtime("expected one launch, got \(lowering.steps.count) steps")
    }
    return launch
}

/// A small deterministic generator so failures reproduce.
private struct SplitMix {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(bound))
    }
}

@Suite struct ReductionIndexTests {
    /// Every (output, reduced) pair of the [outer, reduced, inner] view reads the element the CPU plan reads.
    @Test func factorizationMatchesCPUPlan() throws {
        var rng = SplitMix(state: 7)
        var checked = 0
        for _ in 0..<400 {
            let rank = 1 + rng.next(5)
            let shape = (0..<rank).map { _ in 1 + rng.next(4) }
            let axes = (0..<rank).filter { _ in rng.next(2) == 1 }
            guard !axes.isEmpty else { continue }
            let cpu = ReductionKernels.ReducePlan(shape: shape, reduced: axes, keepDims: false)
            guard let plan = CUDAReduceFactorization.make(shape: shape, axes: axes) else {
                // Only a reduced run broken by a kept axis longer than 1 may be refused.
                let significant = shape.indices.filter { shape[$0] != 1 }
                let flags = significant.map { axes.contains($0) }
                let runs = zip(flags, flags.dropFirst()).filter { $0 != $1 }.count + (flags.first == true ? 1 : 0)
                #expect(runs > 2 || (runs == 2 && flags.first == true), "refused \(shape) \(axes)")
                continue
            }
            #expect(plan.outputCount == cpu.outputCount)
            #expect(plan.reduced == cpu.reducedCount)
            for q in 0..<plan.outputCount {
                let (o, j) = (q / plan.inner, q % plan.inner)
                for r in 0..<plan.reduced {
                    let ours = (o * plan.reduced + r) * plan.inner + j
                    let theirs = cpu.base(q) + (cpu.offsets?[r] ?? r)
                    #expect(ours == theirs, "shape \(shape) axes \(axes) q \(q) r \(r)")
                }
            }
            checked += 1
        }
        #expect(checked > 100)
    }

    /// The pooling taps match the CPU kernel's per-axis tables, and the output shape matches type inference.
    @Test func poolGeometryMatchesCPU() throws {
        var rng = SplitMix(state: 11)
        for _ in 0..<300 {
            let spatial = 1 + rng.next(3)
            let input = (0..<spatial).map { _ in 1 + rng.next(9) }
            let kernel = (0..<spatial).map { _ in 1 + rng.next(3) }
            let strides = (0..<spatial).map { _ in 1 + rng.next(3) }
            let dilations = (0..<spatial).map { _ in 1 + rng.next(2) }
            let pads = (0..<(2 * spatial)).map { i in min(rng.next(3), kernel[i % spatial] - 1) }
            let autoPad: PoolGeometry.AutoPad = [.explicit, .explicit, .sameUpper, .sameLower, .valid][rng.next(5)]
            let window = PoolGeometry(
                kernel: kernel, strides: strides, dilations: dilations, pads: pads, autoPad: autoPad,
                ceilMode: rng.next(2) == 1)
            let layer = PoolLayer(op: .average(countIncludePad: true), window: window)
            let shape = [2, 3] + input
            guard let cpu = try? PoolingKernels.Plan(layer, shape: shape) else { continue }
            let ours = try CUDAPoolGeometry(window: window, shape: shape)
            #expect(ours.outputShape == cpu.outputShape)
            for axis in 0..<3 {
                #expect(ours.output[axis] == cpu.axes[axis].output)
                for o in 0..<ours.output[axis] {
                    let t = ours.taps(axis: axis, o)
                    let table = Array(cpu.axes[axis].table[(4 * o)..<(4 * o + 4)])
                    #expect([t.start, t.lo, t.hi, t.padded] == table, "\(window) axis \(axis) o \(o)")
                }
            }
        }
    }
}

@Suite struct ReductionLoweringTests {
    @Test func reduceLastAxisUsesOneWarpPerRow() throws {
        let launch = try onlyLaunch(try lower(try info(ReduceLayer(op: .sum, axes: [-1]), [[8, 1000]])))
        #expect(launch.function == "reduce_rows_warp")
        #expect(launch.source.name == "reduce_sum_f32")
        #expect(launch.block == CUDADim3(256))
        #expect(launch.grid == CUDADim3(1))
        #expect(launch.arguments == [.pointer(.input(0)), .pointer(.output(0)), .int64(8), .int64(1000)])
    }

    @Test func reduceLongRowsUseOneBlockPerRow() throws {
        let layer = ReduceLayer(op: .mean, axes: [2, 3], keepDims: true)
        let launch = try onlyLaunch(try lower(try info(layer, [[2, 64, 56, 56]])))
        #expect(launch.function == "reduce_rows_block")
        #expect(launch.grid == CUDADim3(128))
        #expect(launch.arguments == [.pointer(.input(0)), .pointer(.output(0)), .int64(128), .int64(3136)])
    }

    @Test func reduceMiddleAxisUsesColumns() throws {
        let layer = ReduceLayer(op: .logSumExp, axes: [1], keepDims: false)
        let launch = try onlyLaunch(try lower(try info(layer, [[4, 256, 49]])))
        #expect(launch.function == "reduce_columns")
        #expect(launch.block == CUDADim3(32, 8))
        #expect(launch.grid == CUDADim3(7))
        #expect(launch.arguments == [.pointer(.input(0)), .pointer(.output(0)), .int64(4), .int64(256), .int64(49)])
    }

    @Test func reduceAxesFromConstantInputAndNoop() throws {
        let axes = Tensor(shape: [1], scalars: [Int64(0)])
        let launch = try onlyLaunch(
            try lower(try info(ReduceLayer(op: .max, axes: nil), [[5, 7], [1]], constants: [1: axes])))
        #expect(launch.function == "reduce_columns")
        #expect(launch.arguments[2...] == [.int64(1), .int64(5), .int64(7)])
        let empty = Tensor(shape: [0], scalars: [Int64]())
        let noop = try lower(
            try info(ReduceLayer(op: .sum, axes: nil, noopWithEmptyAxes: true), [[5, 7], [0]], constants: [1: empty]))
        #expect(noop.steps.isEmpty && noop.aliases == [0: 0])
    }

    @Test func reduceRefusesWhatItCannotRun() throws {
        #expect(throws: KilnError.self) { try lower(try info(ReduceLayer(op: .sum, axes: [0, 2]), [[3, 4, 5]])) }
        #expect(throws: KilnError.self) {
            try lower(try info(ReduceLayer(op: .sum, axes: [1]), [[3, 4]], dtype: .int32))
        }
        #expect(throws: KilnError.self) { try lower(try info(ReduceLayer(op: .sum, axes: nil), [[3, 4], [1]])) }
    }

    @Test func softmaxPicksKernelByRowLength() throws {
        let attention = try onlyLaunch(try lower(try info(SoftmaxLayer(variant: .softmax), [[2, 12, 128, 128]])))
        #expect(attention.function == "softmax_warp_4")
        #expect(attention.grid == CUDADim3(3072 / 8))
        #expect(attention.arguments == [.pointer(.input(0)), .pointer(.output(0)), .int64(3072), .int64(128)])
        let logits = try onlyLaunch(try lower(try info(SoftmaxLayer(variant: .logSoftmax), [[4, 3000]])))
        #expect(logits.function == "softmax_block_8")
        #expect(logits.source.name == "logSoftmax_f32")
        let huge = try onlyLaunch(try lower(try info(SoftmaxLayer(variant: .softmax), [[2, 50000]])))
        #expect(huge.function == "softmax_block_0")
        let channels = try onlyLaunch(try lower(try info(SoftmaxLayer(variant: .softmax, axis: 1), [[2, 10, 7, 7]])))
        #expect(channels.function == "softmax_columns")
        #expect(channels.arguments[2...] == [.int64(2), .int64(10), .int64(49)])
        let flat = try onlyLaunch(
            try lower(try info(SoftmaxLayer(variant: .hardmax, axis: 1, flattenTail: true), [[2, 10, 7]])))
        #expect(flat.function == "hardmax_rows")
        #expect(flat.arguments[2...] == [.int64(2), .int64(70)])
    }

    @Test func layerNormUsesVectorWarpKernel() throws {
        let layer = NormalizationLayer(method: .layer(axis: -1), epsilon: 1e-12)
        let lowering = try lower(try info(layer, [[1, 128, 768], [768], [768]]))
        let launch = try onlyLaunch(lowering)
        #expect(launch.function == "norm_warpv_6")
        #expect(launch.source.name == "layer_norm_f32")
        // 16-bit rows move 8 elements (16 bytes) per access: 3 per lane for 768.
        let half = try onlyLaunch(try lower(try info(layer, [[1, 128, 768], [768], [768]], dtype: .float16)))
        #expect(half.function == "norm_warpv_3" && half.source.name == "layer_norm_f16")
        #expect(launch.grid == CUDADim3(32) && launch.block == CUDADim3(128))
        #expect(
            launch.arguments == [
                .pointer(.input(0)), .pointer(.input(1)), .pointer(.input(2)), .pointer(.output(0)), .int64(128),
                .int64(768), .int64(1), .int64(1), .float32(1e-12),
            ])
        #expect(lowering.constants.isEmpty)
    }

    @Test func layerNormStatisticsBiasAndLongRows() throws {
        let layer = NormalizationLayer(method: .layer(axis: 1))
        // No bias (a zero constant), the mean output named, the inverse std-dev output unnamed (scratch).
        let lowering = try lower(try info(layer, [[6, 30, 50], [30, 50], nil], outputs: ["y", "mean", ""]))
        let launch = try onlyLaunch(lowering)
        #expect(launch.function == "norm_block")
        #expect(launch.source.name == "layer_norm_stats_f32")
        #expect(lowering.constants.count == 1 && lowering.scratchBytes == [24])
        #expect(
            launch.arguments == [
                .pointer(.input(0)), .pointer(.input(1)), .pointer(.constant(0)), .pointer(.output(0)),
                .pointer(.output(1)), .pointer(.scratch(0)), .int64(6), .int64(1500), .int64(1), .int64(0),
                .float32(1e-5),
            ])
        let rms = try onlyLaunch(try lower(try info(NormalizationLayer(method: .rms(axis: -1)), [[4, 10], [10]])))
        #expect(rms.function == "norm_warp1_1" && rms.source.name == "rms_norm_f32")
    }

    @Test func groupInstanceAndBatchNorm() throws {
        let group = try onlyLaunch(
            try lower(
                try info(
                    NormalizationLayer(method: .group(groups: 4, perGroupAffine: false)), [[2, 8, 5, 5], [8], [8]])))
        #expect(group.function == "rows")
        #expect(group.arguments[4...9] == [.int64(8), .int64(50), .int64(25), .int64(4), .int64(2), .int64(1)])
        let instance = try onlyLaunch(
            try lower(try info(NormalizationLayer(method: .instance), [[2, 3, 4, 4], [3], [1]])))
        #expect(
            instance.arguments[4...10] == [
                .int64(6), .int64(16), .int64(16), .int64(3), .int64(1), .int64(1), .int64(0),
            ])
        let batch = try onlyLaunch(
            try lower(
                try info(
                    NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
                    [[2, 3, 4, 4], [3], [3], [3], [3]])))
        #expect(batch.function == "batch_norm")
        #expect(batch.arguments[6...9] == [.int64(96), .int64(3), .int64(16), .dims([1, 1, 1, 1])])
        // LRN: total, channels, plane size, the window's channels before and after, alpha / size.
        let lrn = try onlyLaunch(
            try lower(try info(NormalizationLayer(method: .lrn(size: 4, alpha: 2, beta: 1, bias: 1)), [[1, 3, 2, 2]])))
        #expect(lrn.function == "lrn")
        #expect(
            lrn.arguments[2...7] == [.int64(12), .int64(3), .int64(4), .int64(1), .int64(2), .float32(0.5)])
        #expect(throws: KilnError.self) {
            try lower(try info(NormalizationLayer(method: .lp(axis: 1, p: 2)), [[1, 3, 2, 2]]))
        }
    }

    @Test func poolingLaunches() throws {
        let maxPool = PoolLayer(op: .max, window: PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]))
        let launch = try onlyLaunch(try lower(try info(maxPool, [[1, 64, 112, 112]])))
        #expect(launch.function == "pool_max" && launch.source.name == "pool_f32_i32")
        // Past 2^30 input elements the index arithmetic is 64-bit.
        let huge = try onlyLaunch(try lower(try info(maxPool, [[1, 1 << 16, 128, 128]])))
        #expect(huge.source.name == "pool_f32")
        let total = 64 * 56 * 56
        #expect(launch.grid == CUDADim3(total / 256) && launch.block == CUDADim3(256))
        #expect(
            launch.arguments == [
                .pointer(.input(0)), .pointer(.output(0)), .int64(Int64(total)), .dims([1, 112, 112, 1, 56, 56, 0, 0]),
                .dims([1, 3, 3, 1, 2, 2, 1, 1]), .dims([1, 0, 1, 1, 1, 114, 114, 0]),
            ])
        let global = try onlyLaunch(
            try lower(try info(PoolLayer(op: .average(countIncludePad: false), window: nil), [[2, 2048, 7, 7]])))
        #expect(global.function == "reduce_rows_warp" && global.source.name == "reduce_mean_f32")
        #expect(global.arguments[2...] == [.int64(4096), .int64(49)])
        let globalMax = try onlyLaunch(try lower(try info(PoolLayer(op: .max, window: nil), [[1, 8, 3, 3]])))
        #expect(globalMax.source.name == "reduce_maxIgnoringNaN_f32")
        let indices = PoolLayer(op: .max, window: PoolGeometry(kernel: [2]), outputsIndices: true)
        let withIndices = try onlyLaunch(try lower(try info(indices, [[1, 2, 8]], outputs: ["y", "i"])))
        #expect(withIndices.function == "pool_max_indices")
        #expect(withIndices.arguments[2] == .pointer(.output(1)))
    }
}

@Suite struct ReductionSourceTests {
    /// Every module the family can emit.
    static func allSources() throws -> [CUDASource] {
        var sources: [CUDASource] = []
        for dtype in [DType.float32, .float64, .float16, .bfloat16] {
            for op in CUDAReduceOp.allCases { sources.append(try CUDAReductionSources.reduce(op, dtype)) }
            for variant in [SoftmaxLayer.Variant.softmax, .logSoftmax, .hardmax] {
                sources.append(try CUDASoftmaxLowering.source(variant, dtype))
            }
            sources.append(try CUDASoftmaxLowering.source(.softmax, dtype, zeroNaN: true))
            for (center, stats) in [(true, false), (true, true), (false, false)] {
                sources.append(try CUDANormalizationSources.trailing(dtype, center: center, stats: stats))
            }
            sources.append(try CUDANormalizationSources.planes(dtype))
            for narrow in [false, true] { sources.append(try CUDAPoolLowering.source(dtype, narrow: narrow)) }
        }
        return sources
    }

    @Test func sourcesDoNotDependOnSizes() throws {
        let a = try onlyLaunch(try lower(try info(SoftmaxLayer(variant: .softmax), [[3, 100]])))
        let b = try onlyLaunch(try lower(try info(SoftmaxLayer(variant: .softmax), [[7, 2000]])))
        #expect(a.source == b.source)
        let names = try Self.allSources().map(\.name)
        #expect(Set(names).count == names.count)
    }

    @Test func everySourceCompilesWithNVRTC() throws {
        let sources = try Self.allSources()
        // Kept for inspection and for the command-line check (tools/nvrtc_check.py).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cuda-reduce")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for source in sources {
            try? source.code.write(
                to: folder.appendingPathComponent(source.name + ".cu"), atomically: true, encoding: .utf8)
        }
        guard let nvrtc = try? NVRTC.shared() else {
            print("SKIPPED: NVRTC not found (set KILN_CUDA_LIBS); \(sources.count) reduction sources NOT compiled")
            withKnownIssue("NVRTC is not installed here: the reduction kernels were not compile-checked") {
                Issue.record("NVRTC missing")
            }
            return
        }
        for source in sources {
            #expect(throws: Never.self, "\(source.name)") { _ = try nvrtc.compile(source, architecture: 90) }
        }
    }
}

/// Writes representative lowerings as JSON for a GPU check (`KILN_REDUCE_CASES=file`): each case names the
/// node (for a reference computed elsewhere), its shapes, and its steps, scratch and constants.
@Suite struct ReductionCaseDump {
    static func cases() throws -> [(String, CUDANodeInfo)] {
        let f32 = DType.float32
        func c(
            _ tag: String, _ layer: any Layer, _ shapes: [[Int]?], _ dtype: DType = f32, outputs: [String] = ["y"]
        )
            throws -> (String, CUDANodeInfo)
        {
            (tag, try info(layer, shapes, dtype: dtype, outputs: outputs))
        }
        var list: [(String, CUDANodeInfo)] = []
        list.append(try c("reduce sum -1", ReduceLayer(op: .sum, axes: [-1]), [[8, 1000]]))
        list.append(try c("reduce mean 2,3", ReduceLayer(op: .mean, axes: [2, 3]), [[2, 64, 56, 56]]))
        list.append(try c("reduce logSumExp 1", ReduceLayer(op: .logSumExp, axes: [1]), [[4, 256, 49]]))
        list.append(try c("reduce max 0", ReduceLayer(op: .max, axes: [0]), [[5, 7]]))
        list.append(try c("reduce min -1", ReduceLayer(op: .min, axes: [-1]), [[3, 5000]]))
        list.append(try c("reduce prod -1", ReduceLayer(op: .prod, axes: [-1]), [[6, 10]]))
        for op in [ReduceLayer.Op.l1, .l2, .sumSquare, .logSum] {
            list.append(try c("reduce \(op.rawValue) -1", ReduceLayer(op: op, axes: [-1]), [[16, 300]]))
        }
        list.append(try c("reduce sum all", ReduceLayer(op: .sum, axes: nil), [[37, 41]]))
        list.append(
            try c("reduce logSumExp 1,2", ReduceLayer(op: .logSumExp, axes: [1, 2]), [[3, 40, 50, 2]], .float64))
        list.append(try c("softmax -1", SoftmaxLayer(variant: .softmax), [[2, 12, 128, 128]]))
        list.append(try c("logSoftmax -1", SoftmaxLayer(variant: .logSoftmax), [[4, 3000]]))
        list.append(try c("softmax -1", SoftmaxLayer(variant: .softmax), [[2, 50000]]))
        list.append(try c("softmax 1", SoftmaxLayer(variant: .softmax, axis: 1), [[2, 10, 7, 7]]))
        list.append(try c("logSoftmax -1", SoftmaxLayer(variant: .logSoftmax), [[5, 1000]], .float64))
        list.append(try c("hardmax flat 1", SoftmaxLayer(variant: .hardmax, axis: 1, flattenTail: true), [[2, 10, 7]]))
        list.append(
            try c(
                "layer -1", NormalizationLayer(method: .layer(axis: -1), epsilon: 1e-12),
                [[2, 128, 768], [768], [768]]))
        list.append(
            try c(
                "layer 1 stats", NormalizationLayer(method: .layer(axis: 1)), [[6, 30, 50], [30, 50], nil],
                outputs: ["y", "mean", "inv"]))
        list.append(try c("layer -1", NormalizationLayer(method: .layer(axis: -1)), [[3, 1000], [1000], [1000]]))
        list.append(try c("layer -1", NormalizationLayer(method: .layer(axis: -1)), [[5, 1001], [1001], [1001]]))
        list.append(
            try c("layer -1", NormalizationLayer(method: .layer(axis: -1)), [[5, 100], [100], [100]], .float64))
        list.append(try c("rms -1", NormalizationLayer(method: .rms(axis: -1)), [[4, 10], [10]]))
        list.append(
            try c(
                "group 4", NormalizationLayer(method: .group(groups: 4, perGroupAffine: false)),
                [[2, 8, 5, 5], [8], [8]]))
        list.append(try c("instance", NormalizationLayer(method: .instance), [[2, 3, 4, 4], [3], [3]]))
        list.append(
            try c(
                "batch", NormalizationLayer(method: .batch(training: false, momentum: 0.9)),
                [[2, 3, 4, 4], [3], [3], [3], [3]]))
        let g = PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        list.append(try c("maxpool k3s2p1", PoolLayer(op: .max, window: g), [[2, 64, 112, 112]]))
        let ceil = PoolGeometry(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: true)
        list.append(
            try c(
                "avgpool k3s2p1 ceil", PoolLayer(op: .average(countIncludePad: false), window: ceil), [[1, 3, 10, 10]]))
        list.append(
            try c(
                "avgpool k3s2p1 ceil include", PoolLayer(op: .average(countIncludePad: true), window: ceil),
                [[1, 3, 10, 10]]))
        list.append(
            try c("global avg", PoolLayer(op: .average(countIncludePad: false), window: nil), [[2, 2048, 7, 7]]))
        list.append(try c("global max", PoolLayer(op: .max, window: nil), [[2, 16, 9, 9]]))
        list.append(
            try c(
                "maxpool1d indices",
                PoolLayer(op: .max, window: PoolGeometry(kernel: [2], strides: [2]), outputsIndices: true),
                [[1, 2, 8]], outputs: ["y", "i"]))
        list.append(
            try c(
                "avgpool3d k2",
                PoolLayer(op: .average(countIncludePad: false), window: PoolGeometry(kernel: [2, 2, 2])),
                [[1, 2, 5, 6, 7]]))
        list.append(
            try c(
                "lppool p3 k2", PoolLayer(op: .lp(p: 3), window: PoolGeometry(kernel: [2, 2], strides: [2, 2])),
                [[1, 2, 6, 6]]))
        return list
    }

    static func json(_ operand: CUDAOperand) -> String {
        switch operand {
        case .input(let i): "\"input\(i)\""
        case .output(let i): "\"output\(i)\""
        case .scratch(let i): "\"scratch\(i)\""
        case .constant(let i): "\"constant\(i)\""
        }
    }

    static func json(_ argument: CUDAArgument) -> String {
        switch argument {
        case .pointer(let operand, let offset): "{\"ptr\": \(json(operand)), \"offset\": \(offset)}"
        case .int32(let v): "{\"i32\": \(v)}"
        case .int64(let v): "{\"i64\": \(v)}"
        case .float32(let v): "{\"f32\": \(v)}"
        case .float64(let v): "{\"f64\": \(v)}"
        case .dims(let v): "{\"dims\": \(v)}"
        case .tensorMap(let m): "{\"map\": \"\(m)\"}"
        }
    }

    /// Every representative launch fits the device limits and passes arguments the packer accepts.
    @Test func everyCaseLaunchIsValid() throws {
        for (tag, node) in try Self.cases() {
            for step in try lower(node).steps {
                guard case .launch(let l) = step else { continue }
                try CUDAFunction.validate(grid: l.grid, block: l.block, sharedBytes: l.sharedBytes, function: tag)
                _ = try KernelArgumentPacker.pack(l.arguments, resolve: { _ in 256 })
            }
        }
    }

    @Test func dumpCases() throws {
        guard let path = ProcessInfo.processInfo.environment["KILN_REDUCE_CASES"] else { return }
        var entries: [String] = []
        var sources: [String: CUDASource] = [:]
        for (tag, node) in try Self.cases() {
            let lowering = try lower(node)
            var launches: [String] = []
            for step in lowering.steps {
                guard case .launch(let l) = step else { throw KilnError.runtime("not a launch") }
                sources[l.source.name] = l.source
                launches.append(
                    "{\"source\": \"\(l.source.name)\", \"function\": \"\(l.function)\", \"grid\": [\(l.grid.x), "
                        + "\(l.grid.y), \(l.grid.z)], \"block\": [\(l.block.x), \(l.block.y), \(l.block.z)], "
                        + "\"args\": [\(l.arguments.map(Self.json).joined(separator: ", "))]}")
            }
            let constants = try lowering.constants.map { "\(try $0.doubleValues())" }
            let inputs = node.inputs.map { $0?.concreteShape.map { "\($0)" } ?? "null" }
            let outputs = node.outputs.map { "\($0.concreteShape ?? [])" }
            entries.append(
                "{\"tag\": \"\(tag)\", \"layer\": \"\(node.node.layer.description)\", \"dtype\": "
                    + "\"\(node.inputs[0]?.dtype.onnxName ?? "")\", \"inputs\": [\(inputs.joined(separator: ", "))], "
                    + "\"outputs\": [\(outputs.joined(separator: ", "))], \"scratch\": \(lowering.scratchBytes), "
                    + "\"constants\": [\(constants.joined(separator: ", "))], \"aliases\": \(lowering.aliases.count), "
                    + "\"launches\": [\(launches.joined(separator: ", "))]}")
        }
        try ("[\n" + entries.joined(separator: ",\n") + "\n]\n").write(toFile: path, atomically: true, encoding: .utf8)
        let folder = (path as NSString).deletingLastPathComponent
        for (name, source) in sources {
            try (CUDAPrelude.text + source.code).write(
                toFile: folder + "/" + name + ".cu", atomically: true, encoding: .utf8)
        }
    }
}
