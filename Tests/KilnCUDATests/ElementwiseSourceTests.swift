import Foundation
import KilnIR
import Testing

@testable import KilnCUDA

/// Every pointwise function the elementwise lowerings can generate, for compile checks.
enum ElementwiseCatalog {
    static let dtypes: [DType] = [
        .float32, .float64, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64, .bool,
    ]

    static let unaryOps: [UnaryOp] = [
        .abs, .neg, .exp, .log, .sqrt, .reciprocal, .floor, .ceil, .round, .sign, .sin, .cos, .tan, .asin, .acos,
        .atan, .sinh, .cosh, .tanh, .asinh, .acosh, .atanh, .erf, .isNaN, .isInf(negative: true, positive: false),
        .isInf(negative: true, positive: true), .not, .bitwiseNot, .relu, .leakyRelu(alpha: 0.01),
        .elu(alpha: 1), .selu(alpha: 1.67, gamma: 1.05), .celu(alpha: 1), .sigmoid,
        .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSwish, .softplus, .softsign, .gelu(tanh: false),
        .gelu(tanh: true), .mish, .thresholdedRelu(alpha: 1), .shrink(bias: 0, lambda: 0.5),
    ]

    static let binaryOps: [BinaryOp] = [
        .add, .sub, .mul, .div, .pow, .mod(fmod: true), .mod(fmod: false), .max, .min, .prelu, .shiftLeft,
        .shiftRight, .and, .or, .xor, .equal, .less, .greater, .lessOrEqual, .greaterOrEqual,
    ]

    /// Each supported function once (unsupported combinations are skipped: they throw before any source).
    static func functions() -> [PointwiseFunction] {
        var all: [PointwiseFunction] = []
        for dtype in dtypes {
            for op in unaryOps {
                if let (f, _) = try? PointwiseUnary.function(op, dtype) { all.append(f) }
            }
            for op in binaryOps {
                if let f = try? PointwiseBinary.function(op, dtype, dtype) { all.append(f) }
            }
            for exponent in dtypes where exponent != dtype {
                if let f = try? PointwiseBinary.function(.pow, dtype, exponent) { all.append(f) }
            }
            for target in dtypes where target != dtype {
                if let f = try? PointwiseBinary.cast(dtype, target) { all.append(f) }
            }
            for op in [VariadicOp.sum, .mean, .max, .min] {
                for count in [2, 3, 8] {
                    if let f = try? PointwiseBinary.variadic(op, dtype, count: count, divide: op == .mean) {
                        all.append(f)
                    }
                }
            }
            if let f = try? PointwiseBinary.select(dtype) { all.append(f) }
            for (lo, hi) in [(false, false), (true, false), (false, true), (true, true)] {
                if let f = try? PointwiseUnary.clip(dtype, lowFromInput: lo, highFromInput: hi) { all.append(f) }
            }
        }
        return all + halfFunctions(all)
    }

    /// The float32 functions again reading and writing float16 and bfloat16 (as the lowerings store them),
    /// and the casts between the 16-bit floats and every other dtype.
    static func halfFunctions(_ all: [PointwiseFunction]) -> [PointwiseFunction] {
        var halves: [PointwiseFunction] = []
        for half in [DType.float16, .bfloat16] {
            func stored(_ d: DType) -> DType { d == .float32 ? half : d }
            for f in all
            where !f.name.hasPrefix("cast_") && f.inputs.allSatisfy({ $0 == .float32 || $0 == .bool })
                && f.inputs.contains(.float32)
            {
                halves.append(f.storing(inputs: f.inputs.map(stored), output: stored(f.output)))
            }
            for other in dtypes where other != .float32 {
                if let f = try? PointwiseBinary.cast(.float32, other) {
                    halves.append(f.storing(inputs: [half], output: other))
                }
                if let f = try? PointwiseBinary.cast(CUDAPrelude.computeType(other), .float32) {
                    halves.append(f.storing(inputs: [other], output: half))
                }
            }
        }
        return halves
    }

    /// The paths a function runs on: flat, and broadcasts of rank 1 to 3 with mixed advancing operands, narrow
    /// and wide indices, scalar and vector loads. `every` compiles all of them; otherwise one, in rotation.
    static func paths(_ f: PointwiseFunction, index: Int, every: Bool) -> [PointwisePath] {
        let v = PointwiseKernel.vectorWidth(f)
        let k = f.inputs.count
        let candidates: [PointwisePath] = [
            .flat(vector: v),
            .broadcast(rank: 3, advances: (0..<k).map { $0 % 2 == 0 }, vector: v, wide: false),
            .broadcast(rank: 1, advances: (0..<k).map { $0 % 2 == 1 }, vector: 1, wide: true),
            .broadcast(rank: 8, advances: (0..<k).map { _ in true }, vector: 1, wide: false),
            .broadcast(rank: 2, advances: (0..<k).map { $0 == 0 }, vector: v, wide: true),
        ]
        return every ? candidates : [candidates[index % candidates.count]]
    }

    static func sources() throws -> [CUDASource] {
        var sources: [CUDASource] = []
        for (i, f) in functions().enumerated() {
            let every = ["add_f32", "select_i64", "cast_bool_f64", "clipii_u8", "mean3_i32"].contains(f.name)
            for path in paths(f, index: i, every: every) { sources.append(try PointwiseKernel.source(f, path: path)) }
        }
        return sources
    }
}

/// NVRTC through dlopen, enough to compile a translation unit for sm_90 and read the log.
struct NVRTCChecker {
    typealias Create =
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> Int32
    typealias Compile = @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    typealias LogSize = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    typealias Log = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    typealias Destroy = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32

    let create: Create
    let compile: Compile
    let logSize: LogSize
    let log: Log
    let destroy: Destroy

    init() throws {
        let lib = try DynamicLibrary.open(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], what: "NVRTC")
        create = try lib.function("nvrtcCreateProgram")
        compile = try lib.function("nvrtcCompileProgram")
        logSize = try lib.function("nvrtcGetProgramLogSize")
        log = try lib.function("nvrtcGetProgramLog")
        destroy = try lib.function("nvrtcDestroyProgram")
    }

    /// nil when `code` compiles; else the log.
    func check(_ code: String, name: String) -> String? {
        var program: OpaquePointer?
        let created = code.withCString { c in name.withCString { n in create(&program, c, n, 0, nil, nil) } }
        guard created == 0 else { return "nvrtcCreateProgram failed" }
        defer { _ = destroy(&program) }
        let flags: [String] = ["--gpu-architecture=sm_90", "--std=c++17"]
        let options: [UnsafeMutablePointer<CChar>?] = flags.map { strdup($0) }
        defer { for option in options { free(option) } }
        let pointers: [UnsafePointer<CChar>?] = options.map { p in p.map { UnsafePointer<CChar>($0) } }
        let result = pointers.withUnsafeBufferPointer { compile(program, Int32($0.count), $0.baseAddress) }
        var size = 0
        _ = logSize(program, &size)
        var text = [CChar](repeating: 0, count: size + 1)
        _ = log(program, &text)
        let message = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if result != 0 { return message.isEmpty ? "error \(result)" : message }
        return message.contains("warning") ? message : nil
    }
}

@Suite("CUDA elementwise sources")
struct ElementwiseSourceTests {
    @Test func everyGeneratedSourceCompilesForSm90() throws {
        let sources = try ElementwiseCatalog.sources()
        #expect(sources.count > 500)
        #expect(Set(sources.map(\.name)).count == sources.count)
        // Kept for the Python NVRTC tool and for reading.
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kiln-elementwise-sources")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let nvrtc: NVRTCChecker
        do {
            nvrtc = try NVRTCChecker()
        } catch {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): \(sources.count) sources NOT compile-checked") {
                Issue.record("\(error)")
            }
            return
        }
        // Many sources per translation unit, each in its own namespace (the kernels are extern "C" with unique
        // names), so that NVRTC's start-up cost is paid once per batch.
        let batch = 120
        for start in stride(from: 0, to: sources.count, by: batch) {
            let slice = sources[start..<min(start + batch, sources.count)]
            var unit = CUDAPrelude.text
            for (i, s) in slice.enumerated() { unit += "namespace kiln_unit\(i) {\n\(s.code)\n}\n" }
            try? unit.write(
                to: folder.appendingPathComponent("batch\(start / batch).cu"), atomically: true, encoding: .utf8)
            if let log = nvrtc.check(unit, name: "batch\(start / batch).cu") {
                Issue.record("batch \(start / batch) (\(slice.first?.name ?? "")...): \(log.prefix(4000))")
            }
        }
    }

    /// Runs the broadcast path's index arithmetic, as the generated kernel does it, for random shapes and
    /// compares each operand offset with the one KilnIR's Broadcast strides give.
    @Test func broadcastIndexMathMatchesBroadcast() throws {
        var rng = SystemRandomNumberGenerator()
        var checked = 0
        for _ in 0..<400 {
            let rank = Int.random(in: 1...6, using: &rng)
            let output = (0..<rank).map { _ in [1, 2, 3, 4, 5, 8][Int.random(in: 0..<6, using: &rng)] }
            let operands = Int.random(in: 1...4, using: &rng)
            let shapes: [[Int]] = (0..<operands).map { _ in
                let r = Int.random(in: 0...rank, using: &rng)
                return output.suffix(r).map { Bool.random(using: &rng) ? $0 : 1 }
            }
            for vector in [1, 4] {
                let plan = try PointwisePlan.make(inputShapes: shapes, output: output, vector: vector)
                let n = Tensor.elementCount(output)
                let full = shapes.map {
                    Tensor.elementCount($0) == 1
                        ? output.map { _ in 0 } : Broadcast.strides(of: $0, broadcastTo: output)
                }
                let outStrides = Broadcast.strides(output)
                func expected(_ k: Int, _ i: Int) -> Int {
                    output.indices.reduce(0) { $0 + (i / outStrides[$1]) % output[$1] * full[k][$1] }
                }
                switch plan.path {
                case .flat:
                    for k in 0..<operands { #expect(Tensor.elementCount(shapes[k]) == n || n <= 1) }
                    for i in 0..<n { for k in 0..<operands { #expect(expected(k, i) == i || n <= 1) } }
                case .broadcast(let r, let advances, let v, _):
                    #expect(r == plan.shape.count && r <= 8 && plan.shape.reduce(1, *) == n)
                    for u in 0..<(n / v) {
                        // The kernel's walk: innermost axis first, one division per axis but the outermost.
                        var rem = u * v
                        var offsets = [Int](repeating: 0, count: operands)
                        for d in stride(from: r - 1, through: 1, by: -1) {
                            let q = rem / plan.shape[d]
                            let c = rem - q * plan.shape[d]
                            for k in 0..<operands { offsets[k] += c * plan.strides[k][d] }
                            rem = q
                        }
                        for k in 0..<operands { offsets[k] += rem * plan.strides[k][0] }
                        for j in 0..<v {
                            for k in 0..<operands {
                                let got = offsets[k] + (advances[k] ? j : 0)
                                #expect(got == expected(k, u * v + j), "\(shapes) -> \(output), operand \(k)")
                                if advances[k] && v > 1 { #expect(offsets[k] % v == 0, "misaligned vector load") }
                            }
                            checked += 1
                        }
                    }
                    #expect(n % v == 0)
                }
            }
        }
        #expect(checked > 1000)
    }
}
