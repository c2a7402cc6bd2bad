import KilnIR

/// A pointwise function of k inputs written in CUDA C: `R kiln_op(A0 a0, A1 a1, ..., P0 p0, ...)`. It is the
/// part of a kernel that depends on the operator and dtypes; `PointwiseKernel` wraps it in a loop for one path.
struct PointwiseFunction: Hashable, Sendable {
    /// Unique for the operator and dtypes (`add_f32`); part of the kernel's name.
    var name: String
    var inputs: [DType]
    var output: DType
    /// C types of the scalar parameters (`float`, `double`, `long long`), whose values are launch arguments so
    /// that one module serves every value of e.g. LeakyRelu's alpha.
    var parameterTypes: [String] = []
    /// The function body; reads `a0`, `a1`, ... and `p0`, `p1`, ...; `T` is input 0's C type, `R` the output's.
    var body: String
    /// Device functions the body calls (a fused chain's steps), emitted before it.
    var helpers: String = ""
    /// The dtypes in memory when they differ from those the function computes in (`inputs`, `output`): a
    /// float16 tensor is read into a float argument and a float result stored as float16 (`storing`).
    var storedInputs: [DType]?
    var storedOutput: DType?

    /// The function reading operands stored as `inputs` and writing `output`; 16-bit floats convert to and
    /// from the function's float32 on load and store.
    func storing(inputs memoryInputs: [DType], output memoryOutput: DType) -> PointwiseFunction {
        guard memoryInputs.count == inputs.count, memoryInputs != inputs || memoryOutput != output else {
            return self
        }
        var copy = self
        copy.storedInputs = memoryInputs
        copy.storedOutput = memoryOutput
        let spelled = (copy.memoryInputs + [copy.memoryOutput]).map(\.onnxName).joined(separator: "_")
        copy.name += "_as_" + spelled
        return copy
    }

    var memoryInputs: [DType] { storedInputs ?? inputs }
    var memoryOutput: DType { storedOutput ?? output }
}

/// How a kernel walks the output. Shapes are first collapsed (neighbouring axes merged where every operand
/// walks them the same way), so `[N, 768] + [768]` is rank 2, `x * scalar` rank 1, and `[B, 1, 1, S] + [B, H, S, S]`
/// rank 3.
enum PointwisePath: Hashable, Sendable, CustomStringConvertible {
    /// Every operand has the output's elements in the same order: one 1-D grid-stride loop, `vector` elements
    /// per thread and iteration through aligned vector loads, then a scalar tail.
    case flat(vector: Int)
    /// Broadcasting over `rank` collapsed axes: each thread finds each operand's offset from the output index
    /// (one division per axis but the outermost) and the stride arguments. `advances[k]` says whether operand k
    /// moves along the innermost axis (stride 1) or stands still (stride 0); `vector` elements of the innermost
    /// axis per thread (1 unless its size is a multiple); `wide` selects 64-bit index math. Rank 1 and 2 are
    /// the scalar and row/column broadcast fast paths (no division, or one).
    case broadcast(rank: Int, advances: [Bool], vector: Int, wide: Bool)

    var description: String {
        switch self {
        case .flat(let v): "flat\(v)"
        case .broadcast(let rank, let advances, let v, let wide):
            "b\(rank)_\(String(advances.map { $0 ? "a" : "s" }))_v\(v)_\(wide ? "i64" : "i32")"
        }
    }
}

/// The launch geometry of one pointwise node: its path and the size arguments.
struct PointwisePlan: Equatable, Sendable {
    var path: PointwisePath
    /// Output elements.
    var count: Int
    /// Collapsed output shape (broadcast path only).
    var shape: [Int]
    /// Each operand's element strides over `shape` (0 on broadcast axes).
    var strides: [[Int]]

    /// The plan for operands of `inputShapes` read as `output`; `vector` is the widest vector (in elements)
    /// the dtypes allow. One-element operands may have any shape (clip bounds); every other shape must
    /// broadcast to `output`.
    static func make(inputShapes: [[Int]], output: [Int], vector: Int) throws -> PointwisePlan {
        let count = Tensor.elementCount(output)
        guard output.count <= 64 else { throw KilnError.unsupported("pointwise rank \(output.count)") }
        var full: [[Int]] = []
        for shape in inputShapes {
            let size = Tensor.elementCount(shape)
            if size == 1 {
                full.append([Int](repeating: 0, count: output.count))
                continue
            }
            guard shape.count <= output.count,
                zip(shape.reversed(), output.reversed()).allSatisfy({ $0 == $1 || $0 == 1 })
            else {
                throw KilnError.shapeMismatch("pointwise operand \(shape) does not broadcast to \(output)")
            }
            full.append(Broadcast.strides(of: shape, broadcastTo: output))
        }
        // Merge neighbouring axes that every operand walks alike, as the CPU's BroadcastPlan does.
        var dims: [Int] = []
        var strides: [[Int]] = Array(repeating: [], count: full.count)
        for axis in output.indices where output[axis] != 1 {
            let d = output[axis]
            if let last = dims.indices.last, full.indices.allSatisfy({ strides[$0][last] == full[$0][axis] * d }) {
                dims[last] *= d
                for k in full.indices { strides[k][last] = full[k][axis] }
            } else {
                dims.append(d)
                for k in full.indices { strides[k].append(full[k][axis]) }
            }
        }
        let flat = count <= 1 || (dims.count == 1 && strides.allSatisfy { $0 == [1] })
        if flat {
            return PointwisePlan(path: .flat(vector: vector), count: count, shape: [count], strides: [])
        }
        guard dims.count <= CUDAPrelude.maxRank else {
            throw KilnError.unsupported("pointwise broadcast over \(dims.count) axes after merging (at most 8)")
        }
        let inner = dims[dims.count - 1]
        let advances = strides.map { $0[$0.count - 1] != 0 }
        let path = PointwisePath.broadcast(
            rank: dims.count, advances: advances, vector: inner % vector == 0 ? vector : 1,
            wide: count > Int(Int32.max) - 4096)
        return PointwisePlan(path: path, count: count, shape: dims, strides: strides)
    }
}

/// Builds the source and launch of one pointwise kernel.
enum PointwiseKernel {
    static let threads = 256
    /// 132 SMs x 8 blocks of 256 threads x 4 waves at most; grid-stride loops cover the rest.
    static let maxBlocks = 132 * 8 * 4

    /// The widest vector, in elements, of 16 bytes of the largest operand type.
    static func vectorWidth(_ function: PointwiseFunction) -> Int {
        let largest = (function.memoryInputs + [function.memoryOutput]).map(\.byteSize).max() ?? 4
        return Swift.max(1, 16 / Swift.max(1, largest))
    }

    /// The plan for `function` on operands of the given shapes.
    static func plan(_ function: PointwiseFunction, inputShapes: [[Int]], output: [Int]) throws -> PointwisePlan {
        try PointwisePlan.make(inputShapes: inputShapes, output: output, vector: vectorWidth(function))
    }

    /// The launch computing `output = function(inputs...)`, or nil when there is nothing to compute.
    static func launch(
        _ function: PointwiseFunction, plan: PointwisePlan, inputs: [CUDAOperand], output: CUDAOperand,
        parameters: [CUDAArgument]
    ) throws -> CUDALaunch? {
        guard plan.count > 0 else { return nil }
        guard inputs.count == function.inputs.count, parameters.count == function.parameterTypes.count else {
            throw KilnError.runtime("pointwise \(function.name): operand or parameter count mismatch")
        }
        let source = try self.source(function, path: plan.path)
        var arguments: [CUDAArgument] = [.pointer(output)] + inputs.map { .pointer($0) } + parameters
        arguments.append(.int(plan.count))
        let vector: Int
        switch plan.path {
        case .flat(let v):
            vector = v
        case .broadcast(_, _, let v, _):
            vector = v
            arguments.append(.dims(plan.shape))
            arguments += plan.strides.map { .dims($0) }
        }
        let units = (plan.count + vector - 1) / vector
        let blocks = Swift.max(1, Swift.min((units + threads - 1) / threads, maxBlocks))
        return CUDALaunch(
            source: source, function: kernelName(function, plan.path), grid: CUDADim3(blocks),
            block: CUDADim3(threads), arguments: arguments)
    }

    static func kernelName(_ function: PointwiseFunction, _ path: PointwisePath) -> String {
        "kiln_pw_\(function.name)_\(path)"
    }

    /// `function` as a device function `R name(A0 a0, ..., P0 p0, ...)`, with `T` and `R` defined for its body.
    static func deviceFunction(_ function: PointwiseFunction, named name: String) throws -> String {
        let inTypes = try function.inputs.map(CUDAPrelude.requireTypeName)
        let outType = try CUDAPrelude.requireTypeName(function.output)
        let declared =
            inTypes.enumerated().map { "\($1) a\($0)" } + function.parameterTypes.enumerated().map { "\($1) p\($0)" }
        return """
            __device__ __forceinline__ \(outType) \(name)(\(declared.joined(separator: ", "))) {
                typedef \(inTypes.first ?? outType) T;
                typedef \(outType) R;
                (void)sizeof(T); (void)sizeof(R);
            \(function.body)
            }

            """
    }

    /// The module for `function` on `path`: helpers, the function, the kernel.
    static func source(_ function: PointwiseFunction, path: PointwisePath) throws -> CUDASource {
        let inTypes = try function.memoryInputs.map(CUDAPrelude.requireTypeName)
        let outType = try CUDAPrelude.requireTypeName(function.memoryOutput)
        let k = inTypes.count
        let params = function.parameterTypes.enumerated().map { "\($1) p\($0)" }
        var code = PointwiseHelpers.text + function.helpers + (try deviceFunction(function, named: "kiln_op"))
        let name = kernelName(function, path)
        let pointerParams = ["\(outType)* out"] + inTypes.enumerated().map { "const \($1)* in\($0)" }
        var signature = (pointerParams + params + ["i64 n"]).joined(separator: ", ")
        let paramNames = function.parameterTypes.indices.map { "p\($0)" }
        func call(_ args: [String]) -> String { "kiln_op(" + (args + paramNames).joined(separator: ", ") + ")" }
        switch path {
        case .flat(let v):
            let loads = inTypes.enumerated().map { i, t in
                "        const KilnVec<\(t), \(v)> x\(i) = reinterpret_cast<const KilnVec<\(t), \(v)>*>(in\(i))[u];"
            }.joined(separator: "\n")
            code += """
                extern "C" __global__ void \(name)(\(signature)) {
                    const i64 units = n / \(v);
                    const i64 step = (i64)gridDim.x * blockDim.x;
                    const i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x;
                    for (i64 u = first; u < units; u += step) {
                \(loads)
                        KilnVec<\(outType), \(v)> r;
                #pragma unroll
                        for (int j = 0; j < \(v); ++j) r.v[j] = \(call((0..<k).map { "x\($0).v[j]" }));
                        reinterpret_cast<KilnVec<\(outType), \(v)>*>(out)[u] = r;
                    }
                    for (i64 i = units * \(v) + first; i < n; i += step) out[i] = \(call((0..<k).map { "in\($0)[i]" }));
                }

                """
        case .broadcast(let rank, let advances, let v, let wide):
            guard advances.count == k, (1...CUDAPrelude.maxRank).contains(rank) else {
                throw KilnError.runtime("pointwise \(function.name): bad broadcast path \(path)")
            }
            signature += ", KilnDims shape" + (0..<k).map { ", KilnDims st\($0)" }.joined()
            let ix = wide ? "u64" : "unsigned int"
            var walk = ""
            for d in stride(from: rank - 1, through: 1, by: -1) {
                walk +=
                    "            { const ix size = (ix)shape.v[\(d)]; const ix q = rem / size;"
                    + " const ix c = rem - q * size;"
                walk += (0..<k).map { " o\($0) += c * (ix)st\($0).v[\(d)];" }.joined() + " rem = q; }\n"
            }
            walk += "           " + (0..<k).map { " o\($0) += rem * (ix)st\($0).v[0];" }.joined() + "\n"
            let loads = inTypes.enumerated().map { i, t in
                if advances[i] {
                    return "            const KilnVec<\(t), \(v)> x\(i) = "
                        + "*reinterpret_cast<const KilnVec<\(t), \(v)>*>(in\(i) + o\(i));"
                }
                return "            KilnVec<\(t), \(v)> x\(i); { const \(t) s = in\(i)[o\(i)];"
                    + " for (int j = 0; j < \(v); ++j) x\(i).v[j] = s; }"
            }.joined(separator: "\n")
            code += """
                extern "C" __global__ void \(name)(\(signature)) {
                    typedef \(ix) ix;
                    const ix units = (ix)(n / \(v));
                    const ix step = (ix)gridDim.x * blockDim.x;
                    for (ix u = (ix)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += step) {
                        ix rem = u * \(v);
                        ix \((0..<k).map { "o\($0) = 0" }.joined(separator: ", "));
                \(walk)\(loads)
                        KilnVec<\(outType), \(v)> r;
                #pragma unroll
                        for (int j = 0; j < \(v); ++j) r.v[j] = \(call((0..<k).map { "x\($0).v[j]" }));
                        *reinterpret_cast<KilnVec<\(outType), \(v)>*>(out + (i64)u * \(v)) = r;
                    }
                }

                """
        }
        return CUDASource(name: name, code: code)
    }
}
