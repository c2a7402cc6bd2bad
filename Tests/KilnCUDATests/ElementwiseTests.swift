import KilnIR
import Testing

@testable import KilnCUDA

/// Lowers one node with concrete input types through the registry's elementwise table.
private func lowerElementwise(
    _ layer: any Layer, _ inputs: [TensorType?], output: TensorType, constants: [Tensor?]? = nil
) throws -> CUDALowering {
    let names = inputs.indices.map { "in\($0)" }
    let node = Node(name: "n", layer: layer, inputs: names, outputs: ["out"])
    let info = CUDANodeInfo(
        node: node, inputs: inputs, outputs: [output],
        constants: constants ?? inputs.map { _ in nil }, architecture: 90, options: CUDAOptions())
    guard let lowering = CUDAElementwiseLowerings.all.first(where: { $0.0 == type(of: layer).kind })?.1 else {
        throw KilnError.runtime("no lowering for \(type(of: layer).kind)")
    }
    return try lowering(info)
}

private func launches(_ lowering: CUDALowering) -> [CUDALaunch] {
    lowering.steps.compactMap { step in
        if case .launch(let launch) = step { return launch }
        return nil
    }
}

private func f32(_ dims: [Int]) -> TensorType { TensorType(.float32, dims: dims) }

private func expectUnsupported(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected unsupported", sourceLocation: sourceLocation)
    } catch let error as KilnError {
        #expect(error.kind == .unsupported, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("CUDA elementwise lowerings")
struct ElementwiseLoweringTests {
    @Test func sameShapeAddIsOneFlatVectorizedLaunch() throws {
        let lowering = try lowerElementwise(
            BinaryLayer(.add), [f32([8, 768]), f32([8, 768])], output: f32([8, 768]))
        let all = launches(lowering)
        #expect(all.count == 1)
        let launch = try #require(all.first)
        #expect(launch.function == "kiln_pw_add_f32_flat4")
        #expect(launch.source.name == launch.function)
        #expect(launch.arguments == [.pointer(.output(0)), .pointer(.input(0)), .pointer(.input(1)), .int64(6144)])
        #expect(launch.block.x == 256)
        #expect(launch.grid.x == 6)  // 6144 / 4 per thread / 256
    }

    @Test func rowVectorBroadcastCollapsesToRankTwo() throws {
        let lowering = try lowerElementwise(
            BinaryLayer(.add), [f32([4, 128, 768]), f32([768])], output: f32([4, 128, 768]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_add_f32_b2_aa_v4_i32")
        #expect(
            launch.arguments == [
                .pointer(.output(0)), .pointer(.input(0)), .pointer(.input(1)), .int64(4 * 128 * 768),
                .dims([512, 768]), .dims([768, 1]), .dims([0, 1]),
            ])
    }

    @Test func scalarOperandIsRankOneWithoutDivision() throws {
        let lowering = try lowerElementwise(BinaryLayer(.mul), [f32([1000]), f32([])], output: f32([1000]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_mul_f32_b1_as_v4_i32")
        #expect(launch.arguments.suffix(3) == [.dims([1000]), .dims([1]), .dims([0])])
        #expect(!launch.source.code.contains("/ size"))
    }

    @Test func largeGridIsCappedAndUsesWideIndices() throws {
        let n = 3 << 30
        let lowering = try lowerElementwise(BinaryLayer(.add), [f32([n]), f32([1])], output: f32([n]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function.hasSuffix("_i64"))
        #expect(launch.grid.x == 132 * 8 * 4)
    }

    @Test func generalFourDimensionalBroadcast() throws {
        let lowering = try lowerElementwise(
            BinaryLayer(.sub), [f32([2, 1, 3, 1]), f32([1, 4, 1, 5])], output: f32([2, 4, 3, 5]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_sub_f32_b4_sa_v1_i32")
        #expect(
            launch.arguments.suffix(4) == [
                .int64(120), .dims([2, 4, 3, 5]), .dims([3, 0, 1, 0]), .dims([0, 5, 0, 1]),
            ])
        #expect(launch.grid.x == 1)
    }

    @Test func attentionMaskBroadcast() throws {
        // [B,1,1,S] + [B,H,S,S]: the head and query axes merge.
        let lowering = try lowerElementwise(
            BinaryLayer(.add), [f32([2, 12, 128, 128]), f32([2, 1, 1, 128])], output: f32([2, 12, 128, 128]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_add_f32_b3_aa_v4_i32")
        #expect(
            launch.arguments.suffix(3) == [.dims([2, 12 * 128, 128]), .dims([196_608, 128, 1]), .dims([128, 0, 1])])
    }

    @Test func selectBroadcastsThreeOperands() throws {
        let lowering = try lowerElementwise(
            SelectLayer(), [TensorType(.bool, dims: [4, 1]), f32([4, 6]), f32([])], output: f32([4, 6]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_select_f32_b2_sas_v1_i32")
        #expect(launch.arguments.count == 1 + 3 + 1 + 1 + 3)
        #expect(launch.arguments.suffix(4) == [.dims([4, 6]), .dims([1, 0]), .dims([6, 1]), .dims([0, 0])])
    }

    @Test func castIsFlatAndSameDtypeAliases() throws {
        let lowering = try lowerElementwise(CastLayer(to: .int8), [f32([10])], output: TensorType(.int8, dims: [10]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_cast_f32_i8_flat4")
        #expect(launch.source.code.contains("kiln_trunc32"))
        let same = try lowerElementwise(CastLayer(to: .float32), [f32([10])], output: f32([10]))
        #expect(same.steps.isEmpty && same.aliases == [0: 0])
        let like = try lowerElementwise(
            CastLikeLayer(), [f32([3]), TensorType(.int64, dims: [])], output: TensorType(.int64, dims: [3]))
        #expect(launches(like).first?.function == "kiln_pw_cast_f32_i64_flat2")
    }

    @Test func unaryParametersAreArguments() throws {
        let lowering = try lowerElementwise(UnaryLayer(.leakyRelu(alpha: 0.1)), [f32([33])], output: f32([33]))
        let launch = try #require(launches(lowering).first)
        #expect(launch.function == "kiln_pw_leaky_relu_f32_flat4")
        #expect(launch.arguments == [.pointer(.output(0)), .pointer(.input(0)), .float32(0.1), .int64(33)])
        let isnan = try lowerElementwise(
            UnaryLayer(.isNaN), [TensorType(.float64, dims: [5])], output: TensorType(.bool, dims: [5]))
        #expect(launches(isnan).first?.function == "kiln_pw_isnan_f64_flat2")
    }

    @Test func clipBoundsFromInputsOrParameters() throws {
        let fromAttributes = try lowerElementwise(ClipLayer(min: 0, max: 6), [f32([64])], output: f32([64]))
        let a = try #require(launches(fromAttributes).first)
        #expect(a.function == "kiln_pw_clippp_f32_flat4")
        #expect(a.arguments == [.pointer(.output(0)), .pointer(.input(0)), .float32(0), .float32(6), .int64(64)])
        let fromInputs = try lowerElementwise(ClipLayer(), [f32([64]), f32([]), nil], output: f32([64]))
        let b = try #require(launches(fromInputs).first)
        #expect(b.function == "kiln_pw_clipip_f32_b1_as_v4_i32")
        #expect(b.arguments.contains(.float32(.infinity)))
        let ints = try lowerElementwise(
            ClipLayer(max: 5), [TensorType(.int32, dims: [7])], output: TensorType(.int32, dims: [7]))
        #expect(launches(ints).first?.arguments.contains(.int64(Int64(Int32.min))) == true)
    }

    @Test func manyInputMeanFoldsThroughTheOutput() throws {
        let inputs = (0..<10).map { _ in Optional(f32([16])) }
        let lowering = try lowerElementwise(VariadicLayer(.mean), inputs, output: f32([16]))
        let all = launches(lowering)
        #expect(all.count == 2)
        #expect(all.first?.function == "kiln_pw_sum8_f32_flat4")
        #expect(all.last?.function == "kiln_pw_mean3_f32_flat4")
        #expect(
            all.last?.arguments.prefix(5) == [
                .pointer(.output(0)), .pointer(.output(0)), .pointer(.input(8)),
                .pointer(.input(9)), .float32(10),
            ])
        let one = try lowerElementwise(VariadicLayer(.max), [f32([16])], output: f32([16]))
        #expect(one.steps.count == 1 && launches(one).isEmpty)
    }

    @Test func emptyOutputHasNoSteps() throws {
        let lowering = try lowerElementwise(BinaryLayer(.add), [f32([0, 4]), f32([4])], output: f32([0, 4]))
        #expect(lowering.steps.isEmpty)
    }

    @Test func unsupportedCombinationsThrowUnsupported() {
        expectUnsupported { _ = try lowerElementwise(UnaryLayer(.not), [f32([2])], output: f32([2])) }
        expectUnsupported {
            _ = try lowerElementwise(
                UnaryLayer(.exp), [TensorType(.int32, dims: [2])],
                output: TensorType(.int32, dims: [2]))
        }
        expectUnsupported {
            let h = TensorType(.float8e4m3fn, dims: [2])
            _ = try lowerElementwise(BinaryLayer(.add), [h, h], output: h)
        }
        expectUnsupported { _ = try lowerElementwise(BinaryLayer(.and), [f32([2]), f32([2])], output: f32([2])) }
        expectUnsupported {
            let b = TensorType(.bool, dims: [2])
            _ = try lowerElementwise(BinaryLayer(.add), [b, b], output: b)
        }
        expectUnsupported {
            _ = try lowerElementwise(
                CastLayer(to: .float8e4m3fn), [f32([2])], output: TensorType(.float8e4m3fn, dims: [2]))
        }
    }
}
