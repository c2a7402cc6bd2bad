/// Axis helpers shared by the data-movement layers, their importers and kernels.
public enum ShapeAxes {
    /// `axis` in `-rank..<rank` made non-negative, or an error naming it.
    public static func normalize(_ axis: Int, rank: Int) throws -> Int {
        guard axis >= -rank && axis < rank else {
            throw KilnError.invalidArgument("axis \(axis) is out of range for rank \(rank)")
        }
        return axis < 0 ? axis + rank : axis
    }

    public static func normalize(_ axes: [Int], rank: Int) throws -> [Int] {
        let result = try axes.map { try normalize($0, rank: rank) }
        guard Set(result).count == result.count else {
            throw KilnError.invalidArgument("axes \(axes) repeat an axis")
        }
        return result
    }

    /// The element count of a shape computed from run-time data, or an error for negative dims, overflow, or
    /// an output too large to allocate (2^34 elements), so that hostile shapes fail instead of trapping.
    public static func checkedCount(_ shape: [Int]) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw KilnError.invalidArgument("negative dimension in shape \(shape)") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 34 else { throw KilnError.invalidArgument("shape \(shape) is too large") }
            n = p
        }
        return n
    }

    /// The static dims of input `i`, when its rank is known.
    static func dims(_ inputs: [LayerInput], _ i: Int) -> [Dim]? {
        i < inputs.count ? inputs[i].tensorType?.shape : nil
    }

    static func dtype(_ inputs: [LayerInput], _ i: Int) -> DType? {
        i < inputs.count ? inputs[i].tensorType?.dtype : nil
    }

    /// The integer values of input `i` when it is a constant.
    static func constantInts(_ inputs: [LayerInput], _ i: Int) -> [Int]? {
        guard i < inputs.count, let c = inputs[i].constant else { return nil }
        return try? c.intValues()
    }

    static func list(_ values: [Int]?) -> String {
        values.map { "[" + $0.map(String.init).joined(separator: ",") + "]" } ?? "input"
    }
}

/// Reinterprets the input under a new shape without moving data: ONNX Reshape, Flatten, Squeeze, Unsqueeze.
/// Parameters given as nil come from input 1 at run time.
public struct ReshapeLayer: Layer {
    public static let kind = LayerKind("reshape")

    public enum Op: Sendable, Hashable, Codable {
        /// ONNX Reshape: 0 copies the input dim (unless `allowZero`), -1 is inferred.
        case reshape(shape: [Int]?, allowZero: Bool)
        /// To 2-D: dims before `axis` and from `axis` on.
        case flatten(axis: Int)
        /// Drops the given size-1 axes, or every size-1 axis when nil and input 1 is absent.
        case squeeze(axes: [Int]?)
        case unsqueeze(axes: [Int]?)
    }

    public var op: Op
    public init(_ op: Op) { self.op = op }

    public var description: String {
        switch op {
        case .reshape(let s, let z): "shape=\(ShapeAxes.list(s))\(z ? ",allowzero" : "")"
        case .flatten(let a): "flatten,axis=\(a)"
        case .squeeze(let a): "squeeze,axes=\(a.map { ShapeAxes.list($0) } ?? "all")"
        case .unsqueeze(let a): "unsqueeze,axes=\(ShapeAxes.list(a))"
        }
    }

    /// The output shape for a concrete input shape; `runtime` is input 1's values when present.
    public func outputShape(_ shape: [Int], runtime: [Int]?) throws -> [Int] {
        let dims = try outputDims(shape.map { .value($0) }, runtime: runtime)
        guard let concrete = TensorType(.float32, dims).concreteShape else {
            throw KilnError.invalidArgument("cannot resolve reshape of \(shape)")
        }
        _ = try ShapeAxes.checkedCount(concrete)
        return concrete
    }

    func outputDims(_ dims: [Dim], runtime: [Int]?) throws -> [Dim] {
        let rank = dims.count
        switch op {
        case .reshape(let shape, let allowZero):
            guard let spec = runtime ?? shape else { throw KilnError.invalidArgument("reshape needs a shape") }
            return try Self.reshape(dims, spec, allowZero: allowZero)
        case .flatten(let axis):
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a <= rank else { throw KilnError.invalidArgument("flatten axis \(axis), rank \(rank)") }
            return [Self.product(dims[..<a]), Self.product(dims[a...])]
        case .squeeze(let axes):
            if let list = runtime ?? axes {
                let norm = try ShapeAxes.normalize(list, rank: rank)
                for a in norm where dims[a].value != nil && dims[a].value != 1 {
                    throw KilnError.shapeMismatch("cannot squeeze axis \(a) of size \(dims[a])")
                }
                return dims.enumerated().filter { !norm.contains($0.offset) }.map(\.element)
            }
            if dims.contains(where: { $0.value == nil }) { throw KilnError.invalidArgument("unknown dims") }
            return dims.filter { $0.value != 1 }
        case .unsqueeze(let axes):
            guard let list = runtime ?? axes else { throw KilnError.invalidArgument("unsqueeze needs axes") }
            let outRank = rank + list.count
            let norm = try ShapeAxes.normalize(list, rank: outRank)
            var out: [Dim] = []
            var next = dims.makeIterator()
            for i in 0..<outRank {
                if norm.contains(i) {
                    out.append(1)
                } else if let d = next.next() {
                    out.append(d)
                }
            }
            return out
        }
    }

    static func product<C: Collection>(_ dims: C) -> Dim where C.Element == Dim {
        var p = 1
        for d in dims {
            guard let v = d.value else { return dims.count == 1 ? d : .unknown }
            let (q, overflow) = p.multipliedReportingOverflow(by: v)
            guard !overflow else { return .unknown }
            p = q
        }
        return .value(p)
    }

    /// prod(dims) / prod(known) when symbols cancel (e.g. [N, 3, 4] / [N] = 12), else unknown.
    static func symbolicQuotient(_ dims: [Dim], _ known: [Dim]) -> Dim {
        var symbols: [String] = []
        var numerator = 1
        for d in dims {
            switch d {
            case .value(let v):
                let (q, overflow) = numerator.multipliedReportingOverflow(by: v)
                guard !overflow else { return .unknown }
                numerator = q
            case .symbol(let s): symbols.append(s)
            case .unknown: return .unknown
            }
        }
        var denominator = 1
        for d in known {
            switch d {
            case .value(let v):
                let (q, overflow) = denominator.multipliedReportingOverflow(by: v)
                guard !overflow else { return .unknown }
                denominator = q
            case .symbol(let s):
                guard let i = symbols.firstIndex(of: s) else { return .unknown }
                symbols.remove(at: i)
            case .unknown: return .unknown
            }
        }
        guard denominator > 0, numerator % denominator == 0 else { return .unknown }
        if symbols.isEmpty { return .value(numerator / denominator) }
        if symbols.count == 1 && numerator == denominator { return .symbol(symbols[0]) }
        return .unknown
    }

    static func reshape(_ dims: [Dim], _ spec: [Int], allowZero: Bool) throws -> [Dim] {
        var out: [Dim] = []
        var inferred: Int? = nil
        for (i, s) in spec.enumerated() {
            if s == -1 {
                guard inferred == nil else { throw KilnError.invalidArgument("reshape \(spec) has two -1 dims") }
                inferred = i
                out.append(.unknown)
            } else if s == 0 && !allowZero {
                guard i < dims.count else { throw KilnError.invalidArgument("reshape 0 at \(i) beyond input rank") }
                out.append(dims[i])
            } else if s < 0 {
                throw KilnError.invalidArgument("reshape dim \(s) is invalid")
            } else {
                out.append(.value(s))
            }
        }
        if let inferred {
            guard case .value(let total) = product(dims) else {
                out[inferred] = symbolicQuotient(dims, out.enumerated().filter { $0.offset != inferred }.map(\.element))
                return out
            }
            var known = 1
            for (i, d) in out.enumerated() where i != inferred {
                guard let v = d.value else { return out }
                let (q, overflow) = known.multipliedReportingOverflow(by: v)
                guard !overflow else { throw KilnError.invalidArgument("reshape \(spec) overflows") }
                known = q
            }
            guard known > 0, total % known == 0 else {
                throw KilnError.shapeMismatch("cannot reshape \(dims) to \(spec)")
            }
            out[inferred] = .value(total / known)
        } else if case .value(let total) = product(dims), case .value(let n) = product(out), total != n {
            throw KilnError.shapeMismatch("cannot reshape \(dims) (\(total) elements) to \(spec)")
        }
        return out
    }

    /// `reshape` with a shape whose values are partly symbolic (a shape computation's, `ShapeValues`): a symbol
    /// or unknown entry is that dim, 0 and -1 mean what they mean in ONNX.
    static func reshape(_ dims: [Dim], symbolic spec: [Dim], allowZero: Bool) throws -> [Dim] {
        let values = spec.compactMap(\.value)
        if values.count == spec.count { return try reshape(dims, values, allowZero: allowZero) }
        var out: [Dim] = []
        var inferred: Int? = nil
        for (i, s) in spec.enumerated() {
            switch s {
            case .value(-1):
                guard inferred == nil else { throw KilnError.invalidArgument("reshape \(spec) has two -1 dims") }
                inferred = i
                out.append(.unknown)
            case .value(0) where !allowZero: out.append(i < dims.count ? dims[i] : .unknown)
            case .value(let v) where v < 0: throw KilnError.invalidArgument("reshape dim \(v) is invalid")
            default: out.append(s)
            }
        }
        if let inferred {
            out[inferred] = symbolicQuotient(dims, out.enumerated().filter { $0.offset != inferred }.map(\.element))
        }
        return out
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let dims = ShapeAxes.dims(inputs, 0) else { return [.tensor(TensorType(dtype, nil))] }
        let runtime = ShapeAxes.constantInts(inputs, 1)
        let hasRuntime = inputs.count > 1 && inputs[1].isPresent
        if hasRuntime && runtime == nil {
            if case .reshape(_, let allowZero) = op, let spec = inputs[1].shapeValue {
                return [.tensor(TensorType(dtype, try Self.reshape(dims, symbolic: spec, allowZero: allowZero)))]
            }
            if case .reshape = op, let n = inputs[1].tensorType?.concreteShape?.first {
                return [.tensor(TensorType(dtype, Array(repeating: .unknown, count: n)))]
            }
            return [.tensor(TensorType(dtype, nil))]
        }
        guard let out = try? outputDims(dims, runtime: runtime) else { return [.tensor(TensorType(dtype, nil))] }
        return [.tensor(TensorType(dtype, out))]
    }
}

/// Permutes axes (ONNX Transpose); nil reverses them.
public struct TransposeLayer: Layer {
    public static let kind = LayerKind("transpose")
    public var perm: [Int]?
    public init(perm: [Int]?) { self.perm = perm }
    public var description: String { "perm=\(perm.map { ShapeAxes.list($0) } ?? "reverse")" }

    public func permutation(rank: Int) throws -> [Int] {
        let p = perm ?? Array((0..<rank).reversed())
        guard p.count == rank, Set(p) == Set(0..<rank) else {
            throw KilnError.invalidArgument("perm \(p) is not a permutation of rank \(rank)")
        }
        return p
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return [nil] }
        guard let dims = ShapeAxes.dims(inputs, 0) else { return [.tensor(TensorType(dtype, nil))] }
        let p = try permutation(rank: dims.count)
        return [.tensor(TensorType(dtype, p.map { dims[$0] }))]
    }
}

/// Joins its inputs along `axis` (ONNX Concat).
public struct ConcatLayer: Layer {
    public static let kind = LayerKind("concat")
    public var axis: Int
    public init(axis: Int) { self.axis = axis }
    public var description: String { "axis=\(axis)" }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = inputs.lazy.compactMap({ $0.tensorType?.dtype }).first else { return [nil] }
        var result: [Dim]? = nil
        for input in inputs {
            guard let dims = input.tensorType?.shape else { return [.tensor(TensorType(dtype, nil))] }
            let a = try ShapeAxes.normalize(axis, rank: dims.count)
            guard var r = result else {
                result = dims
                continue
            }
            guard r.count == dims.count else { throw KilnError.shapeMismatch("concat inputs differ in rank") }
            if let x = r[a].value, let y = dims[a].value { r[a] = .value(x + y) } else { r[a] = .unknown }
            result = r
        }
        return [.tensor(TensorType(dtype, result))]
    }
}

/// Cuts the input into `outputCount` pieces along `axis` (ONNX Split). `sizes` nil: from input 1 when given,
/// else equal pieces (the last one smaller when the axis does not divide evenly).
public struct SplitLayer: Layer {
    public static let kind = LayerKind("split")
    public var axis: Int
    public var sizes: [Int]?
    public var outputCount: Int
    public init(axis: Int, sizes: [Int]?, outputCount: Int) {
        self.axis = axis
        self.sizes = sizes
        self.outputCount = outputCount
    }
    public var description: String { "axis=\(axis),sizes=\(ShapeAxes.list(sizes)),outputs=\(outputCount)" }

    /// Piece sizes for an axis of `length`.
    public func pieces(length: Int, runtime: [Int]?) throws -> [Int] {
        if let s = runtime ?? sizes {
            guard s.count == outputCount, s.allSatisfy({ $0 >= 0 && $0 <= length }), s.reduce(0, +) == length else {
                throw KilnError.invalidArgument("split sizes \(s) do not cut an axis of \(length) into \(outputCount)")
            }
            return s
        }
        guard outputCount > 0 else { throw KilnError.invalidArgument("split has no outputs") }
        let chunk = (length + outputCount - 1) / outputCount
        return (0..<outputCount).map { i in max(0, min(chunk, length - i * chunk)) }
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let dtype = ShapeAxes.dtype(inputs, 0) else { return Array(repeating: nil, count: outputCount) }
        let unknown = ValueType.tensor(TensorType(dtype, nil))
        guard let dims = ShapeAxes.dims(inputs, 0) else { return Array(repeating: unknown, count: outputCount) }
        let a = try ShapeAxes.normalize(axis, rank: dims.count)
        let runtime = ShapeAxes.constantInts(inputs, 1)
        let dynamic = inputs.count > 1 && inputs[1].isPresent && runtime == nil
        guard let length = dims[a].value, !dynamic, let p = try? pieces(length: length, runtime: runtime) else {
            var d = dims
            d[a] = .unknown
            return Array(repeating: .tensor(TensorType(dtype, d)), count: outputCount)
        }
        return p.map { n in
            var d = dims
            d[a] = .value(n)
            return .tensor(TensorType(dtype, d))
        }
    }
}
