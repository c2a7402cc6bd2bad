import Foundation
import KilnIR
import KilnRuntime

/// Kernels for the string operators: normalize, regex match, concat, split, and the TF-IDF vectorizer.
enum TextKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(StringNormalizerLayer.self) { layer, inputs, _ in
            [.tensor(try normalize(layer, try inputs.tensor(0)))]
        },
        regexKernel(),
        cpuKernel(StringConcatLayer.self) { _, inputs, _ in
            [.tensor(try concat(try strings(inputs.tensor(0)), try strings(inputs.tensor(1))))]
        },
        cpuKernel(StringSplitLayer.self) { layer, inputs, _ in try split(layer, try strings(inputs.tensor(0))) },
        (
            TfIdfVectorizerLayer.kind,
            { layer, _ in
                guard let typed = layer as? TfIdfVectorizerLayer else {
                    throw KilnError.runtime("tfidf kernel got \(type(of: layer))")
                }
                // The n-gram table is built once per kernel, not per run.
                let counter = try TfIdfCounter(typed)
                return ClosureKernel { inputs, _ in [.tensor(try counter.run(try inputs.tensor(0)))] }
            }
        ),
    ]

    static func strings(_ t: Tensor) throws -> Tensor {
        guard t.dtype == .string else {
            throw KilnError.typeMismatch("expected a string tensor, got \(t.dtype.onnxName)")
        }
        return t
    }

    static func normalize(_ layer: StringNormalizerLayer, _ x: Tensor) throws -> Tensor {
        _ = try strings(x)
        guard x.rank == 1 || (x.rank == 2 && x.shape[0] == 1) else {
            throw KilnError.shapeMismatch("StringNormalizer input must be [C] or [1, C], is \(x.shape)")
        }
        let stops = Set(layer.caseSensitive ? layer.stopwords : layer.stopwords.map { $0.lowercased() })
        var kept: [String] = []
        for s in x.strings {
            if !stops.isEmpty && stops.contains(layer.caseSensitive ? s : s.lowercased()) { continue }
            switch layer.caseAction {
            case .none: kept.append(s)
            case .lower: kept.append(s.lowercased())
            case .upper: kept.append(s.uppercased())
            }
        }
        // An all-stopword input still yields one (empty) element, as the operator defines.
        if kept.isEmpty && x.count > 0 { kept = [""] }
        return Tensor(shape: x.rank == 1 ? [kept.count] : [1, kept.count], strings: kept)
    }

    /// Compiles the pattern once per kernel. The pattern is anchored at both ends so that a match must cover
    /// the whole string (and backtracking can find a longer alternative than the leftmost-first one).
    static func regexKernel() -> (LayerKind, CPUKernelFactory) {
        (
            RegexFullMatchLayer.kind,
            { layer, _ in
                guard let typed = layer as? RegexFullMatchLayer else {
                    throw KilnError.runtime("regexFullMatch kernel got \(type(of: layer))")
                }
                let regex: NSRegularExpression
                // RE2 spells named groups (?P<name>...); ICU, behind NSRegularExpression, spells them (?<name>...).
                let pattern = typed.pattern.replacingOccurrences(of: "(?P<", with: "(?<")
                do {
                    regex = try NSRegularExpression(pattern: "(?:\(pattern))\\z", options: [])
                } catch {
                    throw KilnError.invalidArgument("invalid regular expression \(typed.pattern.debugDescription)")
                }
                let shared = UncheckedSendable(regex)
                return ClosureKernel { inputs, _ in
                    let x = try strings(inputs.tensor(0))
                    let result = x.strings.map { s -> Bool in
                        let range = NSRange(s.startIndex..<s.endIndex, in: s)
                        return shared.value.firstMatch(in: s, options: [.anchored], range: range) != nil
                    }
                    return [.tensor(Tensor(shape: x.shape, scalars: result))]
                }
            }
        )
    }

    static func concat(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let shape = try Broadcast.shape(a.shape, b.shape)
        let sa = Broadcast.strides(of: a.shape, broadcastTo: shape)
        let sb = Broadcast.strides(of: b.shape, broadcastTo: shape)
        let av = a.strings
        let bv = b.strings
        let count = Tensor.elementCount(shape)
        var out: [String] = []
        out.reserveCapacity(count)
        var index = [Int](repeating: 0, count: shape.count)
        var ia = 0
        var ib = 0
        for _ in 0..<count {
            out.append(av[ia] + bv[ib])
            // Odometer increment keeping both read offsets in step.
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                ia += sa[d]
                ib += sb[d]
                if index[d] < shape[d] { break }
                ia -= sa[d] * shape[d]
                ib -= sb[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return Tensor(shape: shape, strings: out)
    }

    static func split(_ layer: StringSplitLayer, _ x: Tensor) throws -> [Value] {
        let pieces = x.strings.map { splitOne($0, layer.delimiter, layer.maxSplit) }
        let width = pieces.map(\.count).max() ?? 0
        var flat: [String] = []
        flat.reserveCapacity(pieces.count * width)
        for p in pieces {
            flat.append(contentsOf: p)
            flat.append(contentsOf: repeatElement("", count: width - p.count))
        }
        let counts = pieces.map { Int64($0.count) }
        return [
            .tensor(Tensor(shape: x.shape + [width], strings: flat)), .tensor(Tensor(shape: x.shape, scalars: counts)),
        ]
    }

    /// Python's `str.split` semantics: with a delimiter, every occurrence splits (empty pieces kept); without,
    /// runs of whitespace split and leading/trailing whitespace is dropped.
    static func splitOne(_ s: String, _ delimiter: String, _ maxSplit: Int?) -> [String] {
        var limit = maxSplit ?? Int.max
        if limit < 0 { limit = Int.max }
        if !delimiter.isEmpty {
            var result: [String] = []
            var rest = Substring(s)
            while limit > 0, let r = rest.range(of: delimiter) {
                result.append(String(rest[..<r.lowerBound]))
                rest = rest[r.upperBound...]
                limit -= 1
            }
            result.append(String(rest))
            return result
        }
        var result: [String] = []
        var rest = Substring(s).drop(while: \.isWhitespace)
        while !rest.isEmpty {
            if limit == 0 {
                // Once the split count runs out the remainder is kept whole, trailing whitespace included.
                result.append(String(rest))
                break
            }
            let end = rest.firstIndex(where: \.isWhitespace) ?? rest.endIndex
            result.append(String(rest[..<end]))
            rest = rest[end...].drop(while: \.isWhitespace)
            limit -= 1
        }
        return result
    }
}
