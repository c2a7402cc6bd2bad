import Foundation
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCUDA

/// Data-movement lowerings without a GPU: each lowering's steps are executed by `ShapeEmulator` (a Swift
/// transcription of every kernel's index math) and compared byte for byte with the CPU kernel on random
/// inputs; every kernel variant is compiled with NVRTC for sm_90 when NVRTC is present.
@Suite struct ShapeTests {
    /// Lowers `layer` for the given inputs (nil = omitted), runs the CPU reference, emulates the lowering and
    /// compares every output's bytes. Returns the lowering for further checks.
    @discardableResult
    static func check(
        _ layer: any Layer, _ inputs: [Tensor?], constants: Set<Int> = [], outputCount: Int = 1,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> CUDALowering {
        let expected = try LayerRunner.run(
            layer, inputs: inputs.map { $0.map { .tensor($0) } }, outputCount: outputCount
        )
        .map { try $0.asTensor() }
        let node = Node(
            name: "n", layer: layer, inputs: inputs.indices.map { inputs[$0] == nil ? "" : "in\($0)" },
            outputs: (0..<outputCount).map { "out\($0)" })
        let info = CUDANodeInfo(
            node: node, inputs: inputs.map { $0.map { TensorType($0.dtype, dims: $0.shape) } },
            outputs: expected.map { TensorType($0.dtype, dims: $0.shape) },
            constants: inputs.indices.map { constants.contains($0) ? inputs[$0] : nil }, architecture: 90,
            options: CUDAOptions())
        guard let lower = CUDALoweringRegistry.all[layer.kind] else {
            throw KilnError.unsupported("no lowering for \(layer.kind)")
        }
        let lowering = try lower(info)
        let outputs = try ShapeEmulator.run(
            lowering, inputs: inputs.map { $0.map(bytes) ?? [] }, outputSizes: expected.map { bytes($0).count })
        for (j, e) in expected.enumerated() {
            #expect(outputs[j] == bytes(e), "output \(j) of \(node)", sourceLocation: sourceLocation)
        }
        return lowering
    }

    static func bytes(_ t: Tensor) -> [UInt8] { t.withUnsafeRawBytes { Array($0) } }

    /// Random bytes of `dtype` (never bool: only 0 and 1 are valid there).
    static func random(_ dtype: DType, _ shape: [Int], _ g: inout SeededGenerator) throws -> Tensor {
        let n = Tensor.elementCount(shape) * dtype.byteSize
        let raw = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
        return try raw.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
    }

    static func randomShape(rank: Int, _ g: inout SeededGenerator, max: Int = 6) -> [Int] {
        (0..<rank).map { _ in Int.random(in: 1...max, using: &g) }
    }

    static let dtypes: [DType] = [.float32, .float16, .int64, .uint8]

    @Test(arguments: dtypes)
    func transposeRandom(dtype: DType) throws {
        var g = SeededGenerator(seed: 11)
        for rank in 1...5 {
            for _ in 0..<6 {
                let shape = Self.randomShape(rank: rank, &g)
                let perm = Array(0..<rank).shuffled(using: &g)
                try Self.check(TransposeLayer(perm: perm), [try Self.random(dtype, shape, &g)])
            }
        }
    }

    @Test func transposePaths() throws {
        var g = SeededGenerator(seed: 3)
        // [B,S,H,D] -> [B,H,S,D]: rows of D move in 16-byte units.
        let heads = try Self.check(TransposeLayer(perm: [0, 2, 1, 3]), [try Self.random(.float32, [2, 9, 3, 8], &g)])
        guard case .launch(let rows)? = heads.steps.first else { throw KilnError.runtime("no launch") }
        // Output [2,3,9,8] reads source strides [216,8,24,1] floats; rows of 8 floats are 2 units of 16 bytes.
        #expect(rows.function == "kiln_strided_u16_r4_i32")
        #expect(rows.arguments[4] == .dims([2, 3, 9, 2]) && rows.arguments[5] == .dims([54, 2, 6, 1]))
        // A matrix transpose goes through shared-memory tiles.
        let matrix = try Self.check(TransposeLayer(perm: [0, 2, 1]), [try Self.random(.float16, [3, 40, 70], &g)])
        guard case .launch(let tiled)? = matrix.steps.first else { throw KilnError.runtime("no launch") }
        #expect(tiled.function == "kiln_transpose_u2_b1" && tiled.block == CUDADim3(32, 8))
        // Channels moved last when there are fewer than 8 of them: a thread per output row.
        let image = try Self.check(TransposeLayer(perm: [0, 2, 3, 1]), [try Self.random(.uint8, [2, 3, 5, 9], &g)])
        guard case .launch(let narrow)? = image.steps.first else { throw KilnError.runtime("no launch") }
        #expect(narrow.function == "kiln_transpose_narrow_u1_b1_i32", "\(narrow.function)")
        let odd = try Self.check(TransposeLayer(perm: [2, 0, 3, 1]), [try Self.random(.float16, [2, 5, 3, 11], &g)])
        guard case .launch(let batched)? = odd.steps.first else { throw KilnError.runtime("no launch") }
        #expect(batched.function == "kiln_transpose_narrow_u2_b2_i32", "\(batched.function)")
        // Moving only size-1 axes keeps the bytes: the output aliases the input.
        let trivial = try Self.check(TransposeLayer(perm: [1, 0, 2]), [try Self.random(.int64, [1, 5, 7], &g)])
        #expect(trivial.steps.isEmpty && trivial.aliases == [0: 0])
        let pooled = try Self.check(
            TransposeLayer(perm: [0, 3, 1, 2]), [try Self.random(.float16, [3, 1, 1, 16], &g)])
        #expect(pooled.steps.isEmpty && pooled.aliases == [0: 0], "a global pool's [N, 1, 1, C] to channels-first")
    }

    @Test func aliases() throws {
        var g = SeededGenerator(seed: 5)
        let x = try Self.random(.float32, [2, 3, 4], &g)
        for layer: any Layer in [
            ReshapeLayer(.reshape(shape: [6, -1], allowZero: false)), ReshapeLayer(.flatten(axis: 1)),
            ReshapeLayer(.unsqueeze(axes: [0])), IdentityLayer(),
        ] {
            let lowering = try Self.check(layer, [x])
            #expect(lowering.steps.isEmpty && lowering.aliases == [0: 0])
        }
        let squeeze = try Self.check(ReshapeLayer(.squeeze(axes: nil)), [try Self.random(.int64, [1, 3, 1], &g)])
        #expect(squeeze.aliases == [0: 0])
        let dropout = try Self.check(DropoutLayer(), [x], outputCount: 2)
        #expect(dropout.aliases == [0: 0] && dropout.steps.count == 1)
    }

    @Test(arguments: dtypes)
    func sliceRandom(dtype: DType) throws {
        var g = SeededGenerator(seed: 17)
        for _ in 0..<30 {
            let rank = Int.random(in: 1...4, using: &g)
            let shape = Self.randomShape(rank: rank, &g, max: 9)
            let axes = Array(Array(0..<rank).shuffled(using: &g).prefix(Int.random(in: 1...rank, using: &g)))
            var starts: [Int] = []
            var ends: [Int] = []
            var steps: [Int] = []
            for _ in axes {
                starts.append(Int.random(in: -12...12, using: &g))
                ends.append(Int.random(in: -12...12, using: &g))
                steps.append([-3, -2, -1, 1, 1, 2, 3].randomElement(using: &g) ?? 1)
            }
            let layer = SliceLayer(starts: starts, ends: ends, axes: axes, steps: steps, isStatic: true)
            try Self.check(layer, [try Self.random(dtype, shape, &g)])
        }
    }

    @Test func sliceFromConstantInputs() throws {
        var g = SeededGenerator(seed: 2)
        let x = try Self.random(.float32, [4, 10, 6], &g)
        let layer = SliceLayer(starts: nil, ends: nil, axes: nil, steps: nil, isStatic: false)
        let inputs = [x, .int64([-1, 8]), .int64([-100, 1]), .int64([0, 1]), .int64([-1, -2])]
        try Self.check(layer, inputs, constants: [1, 2, 3, 4])
        // Computed starts cannot be lowered.
        let info = CUDANodeInfo(
            node: Node(name: "s", layer: layer, inputs: ["x", "s", "e"], outputs: ["y"]),
            inputs: [
                TensorType(.float32, dims: x.shape), TensorType(.int64, dims: [1]), TensorType(.int64, dims: [1]),
            ],
            outputs: [TensorType(.float32, dims: [1, 10, 6])], constants: [nil, nil, nil], architecture: 90,
            options: CUDAOptions())
        #expect(throws: KilnError.self) { _ = try CUDALoweringRegistry.all[SliceLayer.kind]?(info) }
    }

    @Test func expandTileDepthSpace() throws {
        var g = SeededGenerator(seed: 8)
        for dtype in Self.dtypes {
            try Self.check(ExpandLayer(shape: [2, 3, 4, 5]), [try Self.random(dtype, [3, 1, 5], &g)])
            try Self.check(ExpandLayer(shape: [4, 1]), [try Self.random(dtype, [1, 7], &g)])
            try Self.check(TileLayer(repeats: [2, 1, 3]), [try Self.random(dtype, [3, 4, 5], &g)])
            try Self.check(TileLayer(repeats: [3, 2, 2, 2]), [try Self.random(dtype, [2, 3, 2, 5], &g)])
            for direction in [DepthSpaceLayer.Direction.depthToSpace, .spaceToDepth] {
                for mode in [DepthSpaceLayer.Mode.dcr, .crd] {
                    try Self.check(
                        DepthSpaceLayer(direction, blockSize: 2, mode: mode),
                        [try Self.random(dtype, [2, 8, 4, 6], &g)])
                }
            }
        }
    }

    @Test func concatAndSplit() throws {
        var g = SeededGenerator(seed: 21)
        for dtype in Self.dtypes {
            for axis in [0, 1, 2, -1] {
                let parts = try (0..<11).map { i -> Tensor in
                    var shape = [2, 3, 5]
                    shape[(axis + 3) % 3] = i % 4 == 3 ? 0 : 1 + i % 3
                    return try Self.random(dtype, shape, &g)
                }
                let lowering = try Self.check(ConcatLayer(axis: axis), parts)
                if axis == 0 { #expect(lowering.steps.allSatisfy { if case .copy = $0 { true } else { false } }) }
                let x = try Self.random(dtype, [4, 6, 5], &g)
                try Self.check(SplitLayer(axis: axis, sizes: nil, outputCount: 3), [x], outputCount: 3)
                let a = (axis + 3) % 3
                let sizes = [0, 1, x.shape[a] - 1]
                try Self.check(SplitLayer(axis: axis, sizes: sizes, outputCount: 3), [x], outputCount: 3)
            }
        }
    }

    @Test func padModes() throws {
        var g = SeededGenerator(seed: 4)
        for dtype in Self.dtypes {
            let x = try Self.random(dtype, [2, 3, 5], &g)
            for mode in [PadLayer.Mode.constant, .edge, .wrap, .reflect] {
                try Self.check(PadLayer(mode: mode, pads: [0, 2, 3, 1, 1, 4], value: 1.5, axes: nil), [x])
                try Self.check(PadLayer(mode: mode, pads: [-1, 2, 0, -2], value: nil, axes: [2, 1]), [x])
            }
            try Self.check(
                PadLayer(mode: .constant, pads: nil, value: nil, axes: nil), [x, .int64([1, 0, 0, 0, 2, 1])],
                constants: [1])
        }
    }

    @Test func gathers() throws {
        var g = SeededGenerator(seed: 9)
        for dtype in Self.dtypes {
            let data = try Self.random(dtype, [4, 5, 3], &g)
            for axis in [0, 1, 2, -1] {
                let n = data.shape[(axis + 3) % 3]
                let values = (0..<6).map { _ in Int64.random(in: -Int64(n)...Int64(n - 1), using: &g) }
                try Self.check(GatherLayer(axis: axis), [data, Tensor(shape: [2, 3], scalars: values)])
                try Self.check(GatherLayer(axis: axis), [data, Tensor(scalar: Int32(values[0]))])
                var shape = data.shape
                shape[(axis + 3) % 3] = 2
                let count = Tensor.elementCount(shape)
                let elements = (0..<count).map { _ in Int32.random(in: -Int32(n)...Int32(n - 1), using: &g) }
                try Self.check(GatherElementsLayer(axis: axis), [data, Tensor(shape: shape, scalars: elements)])
            }
        }
        // BERT's embedding lookup: 768 floats a row move in 16-byte units.
        let table = try Self.random(.float32, [30, 768], &g)
        let ids = Tensor(shape: [1, 7], scalars: (0..<7).map { Int64($0 * 4) })
        let lowering = try Self.check(GatherLayer(axis: 0), [table, ids])
        guard case .launch(let launch)? = lowering.steps.first else { throw KilnError.runtime("no launch") }
        #expect(launch.function == "kiln_gather_u16_i64" && launch.arguments[5] == .int(192))
    }

    @Test func generators() throws {
        var g = SeededGenerator(seed: 1)
        let x = try Self.random(.float16, [2, 3, 4], &g)
        let shape = try Self.check(ShapeOfLayer(start: 1), [x])
        #expect(shape.constants.first.map(Self.bytes) == Self.bytes(.int64([3, 4])))
        try Self.check(SizeLayer(), [x])
        let value = Tensor(shape: [1], scalars: [Float(2.5)])
        try Self.check(ConstantOfShapeLayer(value: value), [.int64([3, 5])], constants: [0])
    }
}

extension ShapeTests {
    /// The CPU throws on an out-of-range index; a kernel cannot, so the GPU writes zeros for that slice.
    @Test func gatherOutOfRangeWritesZeros() throws {
        let data = Tensor(shape: [3, 2], scalars: [Float(1), 2, 3, 4, 5, 6])
        let indices = Tensor(shape: [3], scalars: [Int32(-1), 7, -4])
        let node = Node(name: "g", layer: GatherLayer(axis: 0), inputs: ["d", "i"], outputs: ["y"])
        let info = CUDANodeInfo(
            node: node, inputs: [TensorType(.float32, dims: [3, 2]), TensorType(.int32, dims: [3])],
            outputs: [TensorType(.float32, dims: [3, 2])], constants: [nil, nil], architecture: 90,
            options: CUDAOptions())
        guard let lower = CUDALoweringRegistry.all[GatherLayer.kind] else { throw KilnError.unsupported("gather") }
        let lowering = try lower(info)
        let out = try ShapeEmulator.run(lowering, inputs: [Self.bytes(data), Self.bytes(indices)], outputSizes: [24])
        #expect(out[0] == Self.bytes(Tensor(shape: [3, 2], scalars: [Float(5), 6, 0, 0, 0, 0])))
    }
}
