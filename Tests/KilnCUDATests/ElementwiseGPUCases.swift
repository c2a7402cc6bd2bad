import Foundation
import KilnIR
import KilnRuntime
import Testing

@testable import KilnCPU
@testable import KilnCUDA

/// Writes representative elementwise nodes (their launches, random inputs and the CPU backend's outputs) to
/// the folder named by `KILN_ELEMENTWISE_CASES`, for `Tests/KilnCUDATests/run_elementwise_cases.py` to run on
/// a GPU and compare. Does nothing without the variable.
@Suite("CUDA elementwise GPU cases")
struct ElementwiseGPUCases {
    struct NoSubgraphs: SubgraphCompiler {
        func compile(_ graph: Graph) throws -> CompiledGraph { throw KilnError.unsupported("no subgraphs") }
    }

    final class Writer {
        let folder: URL
        var manifest: [[String: Any]] = []
        var files = 0
        init(_ folder: URL) { self.folder = folder }

        func file(_ tensor: Tensor) throws -> String {
            files += 1
            let name = "t\(files).bin"
            try tensor.withUnsafeRawBytes { try Data($0).write(to: folder.appendingPathComponent(name)) }
            return name
        }

        func add(_ name: String, _ layer: any Layer, _ inputs: [Tensor?]) throws {
            let kind = type(of: layer).kind
            let node = Node(name: name, layer: layer, inputs: inputs.indices.map { "i\($0)" }, outputs: ["o"])
            guard ElementwiseKernels.table.contains(where: { $0.0 == kind }) else { return }
            let reference: Tensor
            do {
                let kernel = try CPUDevice(options: .untuned).makeKernel(node, subgraphs: NoSubgraphs())
                let out = try kernel.execute(
                    inputs.map { $0.map(Value.tensor) }, KernelContext(scope: ValueScope(), threads: 1))
                reference = try out[0].asTensor()
            } catch { return }  // not defined on the CPU either
            let info = CUDANodeInfo(
                node: node, inputs: inputs.map { $0?.type }, outputs: [reference.type],
                constants: inputs.map { _ in nil }, architecture: 90, options: CUDAOptions())
            guard let lower = CUDAElementwiseLowerings.all.first(where: { $0.0 == kind })?.1,
                let lowering = try? lower(info)
            else { return }
            var steps: [[String: Any]] = []
            for step in lowering.steps {
                switch step {
                case .launch(let l):
                    let args: [[Any]] = l.arguments.map { a in
                        switch a {
                        case .pointer(let op, let offset): ["ptr", "\(op)", offset]
                        case .int32(let v): ["i32", Int(v)]
                        case .int64(let v): ["i64", Int(v)]
                        case .float32(let v): ["f32", Double(v)]
                        case .float64(let v): ["f64", v]
                        case .dims(let d): ["dims", d]
                        case .tensorMap(let m): ["map", "\(m)"]
                        }
                    }
                    steps.append([
                        "launch": l.function, "code": CUDAPrelude.text + l.source.code, "grid": l.grid.x,
                        "block": l.block.x, "args": args,
                    ])
                case .copy(let c): steps.append(["copy": "\(c.source)", "bytes": c.bytes])
                default: return
                }
            }
            manifest.append([
                "name": name, "inputs": try inputs.map { try $0.map { try file($0) } ?? "" },
                "output": try file(reference), "dtype": reference.dtype.description,
                "bytes": reference.byteCount, "aliases": lowering.aliases.isEmpty ? 0 : 1, "steps": steps,
            ])
        }
    }

    func floats(
        _ shape: [Int], _ dtype: DType = .float32, positive: Bool = false, seed: Int = 1
    ) throws
        -> Tensor
    {
        let specials: [Double] = [0, -0.0, 1, -1, 0.5, 1.5, 2.5, -2.5, .infinity, -.infinity, .nan, 100, -100]
        var rng = Seeded(seed)
        let values = (0..<Tensor.elementCount(shape)).map { i -> Double in
            if i % 11 == 3 { return specials[(i / 11) % specials.count] }
            let v = rng.uniform() * 6 - 3
            return positive ? abs(v) + 0.01 : v
        }
        return try Tensor(shape: shape, scalars: values).cast(to: dtype)
    }

    func integers(_ shape: [Int], _ dtype: DType, seed: Int = 2) throws -> Tensor {
        var rng = Seeded(seed)
        let specials: [Int64] = [0, -1, 1, 127, -128, 255, 2_147_483_647, -2_147_483_648, 7, -7, 64, 3]
        let values = (0..<Tensor.elementCount(shape)).map { i -> Int64 in
            i % 7 == 2 ? specials[(i / 7) % specials.count] : Int64(rng.uniform() * 40) - 20
        }
        return try Tensor(shape: shape, scalars: values).cast(to: dtype)
    }

    struct Seeded {
        var state: UInt64
        init(_ seed: Int) { state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1 }
        mutating func uniform() -> Double {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return Double(state >> 11) / Double(1 << 53)
        }
    }

    @Test func writeCases() throws {
        guard let path = ProcessInfo.processInfo.environment["KILN_ELEMENTWISE_CASES"] else { return }
        let folder = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let w = Writer(folder)
        for dtype in [DType.float32, .float64] {
            for op in ElementwiseCatalog.unaryOps {
                let positive = [UnaryOp.log, .sqrt, .acosh].contains(op)
                try w.add("unary \(op) \(dtype)", UnaryLayer(op), [floats([1027], dtype, positive: positive)])
            }
        }
        for dtype in [DType.int8, .int32, .int64, .uint8, .uint64] {
            for op in ElementwiseCatalog.unaryOps {
                try w.add("unary \(op) \(dtype)", UnaryLayer(op), [integers([515], dtype)])
            }
        }
        try w.add("unary not", UnaryLayer(.not), [integers([100], .bool)])
        let shapes: [([Int], [Int])] = [
            ([37, 67], [37, 67]), ([37, 67], [67]), ([1031], []), ([2, 1, 3, 1], [1, 4, 1, 5]), ([64, 1], [64, 32]),
            ([2, 3, 16, 16], [2, 1, 1, 16]), ([33, 64], [64]), ([5, 1, 8], [3, 8]),
        ]
        for (i, (sa, sb)) in shapes.enumerated() {
            for op in ElementwiseCatalog.binaryOps {
                try w.add(
                    "binary \(op) f32 \(sa) \(sb)", BinaryLayer(op), [floats(sa, seed: i), floats(sb, seed: 9 + i)])
            }
        }
        for dtype in [DType.float64, .int8, .int16, .int32, .int64, .uint8, .uint32, .uint64, .bool] {
            for op in ElementwiseCatalog.binaryOps {
                let make: ([Int], Int) throws -> Tensor = { shape, seed in
                    dtype == .float64 ? try floats(shape, dtype, seed: seed) : try integers(shape, dtype, seed: seed)
                }
                try w.add("binary \(op) \(dtype) same", BinaryLayer(op), [make([203], 3), make([203], 4)])
                try w.add("binary \(op) \(dtype) row", BinaryLayer(op), [make([9, 24], 5), make([24], 6)])
            }
        }
        try w.add("pow f32^i32", BinaryLayer(.pow), [floats([99]), integers([99], .int32)])
        try w.add("pow i32^f32", BinaryLayer(.pow), [integers([99], .int32), floats([99])])
        try w.add("pow i32^i64", BinaryLayer(.pow), [integers([99], .int32), integers([99], .int64, seed: 5)])
        let castTypes: [DType] = [
            .float32, .float64, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64,
            .bool,
        ]
        for s in castTypes {
            var big = try floats([301], .float64).scalars(as: Double.self)
            for i in stride(from: 0, to: big.count, by: 5) { big[i] *= 3e9 * Double(i % 3 + 1) }
            let source =
                s.isFloatingPoint
                ? try Tensor(shape: [301], scalars: big).cast(to: s) : try integers([301], s)
            for t in castTypes where t != s { try w.add("cast \(s) \(t)", CastLayer(to: t), [source]) }
        }
        for op in [VariadicOp.sum, .mean, .max, .min] {
            try w.add(
                "variadic \(op) 3", VariadicLayer(op), [floats([4, 1, 6]), floats([5, 6], seed: 3), floats([6])])
            try w.add("variadic \(op) 10", VariadicLayer(op), try (0..<10).map { try floats([77], seed: $0) })
            try w.add(
                "variadic \(op) i32", VariadicLayer(op), try (0..<3).map { try integers([8, 9], .int32, seed: $0) })
        }
        try w.add("select", SelectLayer(), [integers([4, 1], .bool), floats([4, 6]), floats([], seed: 5)])
        try w.add("select i64", SelectLayer(), [integers([64], .bool), integers([64], .int64), integers([64], .int64)])
        try w.add("clip attr", ClipLayer(min: 0, max: 6), [floats([1000])])
        try w.add("clip inputs", ClipLayer(), [floats([1000]), Tensor(scalar: Float(-1)), Tensor(scalar: Float(1))])
        try w.add("clip int", ClipLayer(min: -5), [integers([100], .int32), nil, Tensor(scalar: Int32(9))])
        // Timing only (inputs are made on the device): the flat, row-broadcast and general paths.
        let big = TensorType(.float32, dims: [16384, 4096])
        for (name, layer, inputs) in [
            ("bench flat add", BinaryLayer(.add) as any Layer, [big, big]),
            ("bench row add", BinaryLayer(.add), [big, TensorType(.float32, dims: [4096])]),
            ("bench scalar mul", BinaryLayer(.mul), [big, TensorType(.float32, dims: [])]),
            (
                "bench 4d add", BinaryLayer(.add),
                [TensorType(.float32, dims: [64, 16, 256, 256]), TensorType(.float32, dims: [64, 1, 1, 256])]
            ),
            ("bench gelu", UnaryLayer(.gelu(tanh: false)), [big]),
        ] {
            let node = Node(name: name, layer: layer, inputs: inputs.indices.map { "i\($0)" }, outputs: ["o"])
            let info = CUDANodeInfo(
                node: node, inputs: inputs, outputs: [inputs[0]], constants: inputs.map { _ in nil },
                architecture: 90, options: CUDAOptions())
            let kind = type(of: layer).kind
            guard let lower = CUDAElementwiseLowerings.all.first(where: { $0.0 == kind })?.1 else { continue }
            let lowering = try lower(info)
            guard let first = lowering.steps.first, case .launch(let l) = first else { continue }
            let args: [[Any]] = l.arguments.map { a in
                switch a {
                case .pointer(let op, let offset): ["ptr", "\(op)", offset]
                case .int64(let v): ["i64", Int(v)]
                case .dims(let d): ["dims", d]
                default: ["f32", 0.0]
                }
            }
            w.manifest.append([
                "name": name, "inputBytes": inputs.map { Tensor.elementCount($0.concreteShape ?? []) * 4 },
                "bytes": Tensor.elementCount(inputs[0].concreteShape ?? []) * 4,
                "steps": [
                    [
                        "launch": l.function, "code": CUDAPrelude.text + l.source.code, "grid": l.grid.x,
                        "block": l.block.x, "args": args,
                    ] as [String: Any]
                ],
            ])
        }
        let data = try JSONSerialization.data(withJSONObject: w.manifest)
        try data.write(to: folder.appendingPathComponent("manifest.json"))
        print("wrote \(w.manifest.count) cases to \(path)")
    }
}
