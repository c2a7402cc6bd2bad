/// A parsed Einstein-summation equation such as `bij,bjk->bik` or `...ii->...i`. Labels are letters; `...`
/// stands for the broadcast axes. When the equation has no `->`, the output is every label used once, in
/// alphabetical order, after the ellipsis axes (numpy's implicit mode).
public struct EinsumEquation: Sendable, Hashable, CustomStringConvertible, Codable {
    public enum Term: Sendable, Hashable {
        case label(Character)
        case ellipsis
    }

    public var inputs: [[Term]]
    public var output: [Term]
    public let text: String

    public init(parsing equation: String) throws {
        text = equation
        let compact = equation.filter { !$0.isWhitespace }
        let sides = compact.split(separator: "->", omittingEmptySubsequences: false).map(String.init)
        guard sides.count <= 2 else { throw KilnError.invalidModel("einsum equation '\(equation)' has two '->'") }
        inputs = try sides[0].split(separator: ",", omittingEmptySubsequences: false).map {
            try EinsumEquation.terms(String($0), in: equation)
        }
        if sides.count == 2 {
            output = try EinsumEquation.terms(sides[1], in: equation)
            var seen = Set<Character>()
            for case .label(let l) in output {
                guard seen.insert(l).inserted else {
                    throw KilnError.invalidModel("einsum output label '\(l)' repeats in '\(equation)'")
                }
                guard inputs.contains(where: { $0.contains(.label(l)) }) else {
                    throw KilnError.invalidModel("einsum output label '\(l)' is in no input of '\(equation)'")
                }
            }
        } else {
            var counts: [Character: Int] = [:]
            for term in inputs.joined() { if case .label(let l) = term { counts[l, default: 0] += 1 } }
            let hasEllipsis = inputs.contains { $0.contains(.ellipsis) }
            output = (hasEllipsis ? [.ellipsis] : []) + counts.filter { $0.value == 1 }.keys.sorted().map { .label($0) }
        }
    }

    /// Encoded as its text, parsed again (and so checked again) when decoded.
    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }

    private static func terms(_ text: String, in equation: String) throws -> [Term] {
        var terms: [Term] = []
        var chars = Array(text)[...]
        while let c = chars.first {
            if c == "." {
                guard chars.prefix(3).elementsEqual("..."), !terms.contains(.ellipsis) else {
                    throw KilnError.invalidModel("einsum equation '\(equation)' has a bad ellipsis")
                }
                terms.append(.ellipsis)
                chars = chars.dropFirst(3)
            } else {
                guard c.isLetter, c.isASCII else {
                    throw KilnError.invalidModel("einsum equation '\(equation)' has invalid character '\(c)'")
                }
                terms.append(.label(c))
                chars = chars.dropFirst()
            }
        }
        return terms
    }

    public var description: String { text }
}

/// ONNX Einsum: a sum of products over labelled axes.
public struct EinsumLayer: Layer {
    public static let kind = LayerKind("einsum")
    public var equation: EinsumEquation

    public init(equation: EinsumEquation) { self.equation = equation }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == equation.inputs.count else {
            throw KilnError.invalidArgument(
                "einsum '\(equation)' takes \(equation.inputs.count) inputs, got \(inputs.count)")
        }
        let types = inputs.map(\.tensorType)
        guard let first = types.first, let dtype = first?.dtype else { return [nil] }
        var shapes: [[Dim]] = []
        for t in types {
            guard let s = t?.shape else { return [.tensor(TensorType(dtype, nil))] }
            shapes.append(s)
        }
        return [.tensor(TensorType(dtype, try EinsumLayer.outputDims(equation, shapes)))]
    }

    /// The output shape given static input shapes.
    public static func outputDims(_ equation: EinsumEquation, _ shapes: [[Dim]]) throws -> [Dim] {
        var labels: [Character: Dim] = [:]
        var ellipsis: [Dim] = []
        for (terms, shape) in zip(equation.inputs, shapes) {
            let named = terms.filter { $0 != .ellipsis }.count
            let hasEllipsis = terms.contains(.ellipsis)
            guard hasEllipsis ? shape.count >= named : shape.count == named else {
                throw KilnError.shapeMismatch("einsum '\(equation)': operand of shape \(shape) does not match \(terms)")
            }
            let ellipsisRank = shape.count - named
            var axis = 0
            for term in terms {
                switch term {
                case .ellipsis:
                    ellipsis = try Broadcast.dims(ellipsis, Array(shape[axis..<axis + ellipsisRank]))
                    axis += ellipsisRank
                case .label(let l):
                    let d = shape[axis]
                    if let old = labels[l], old != 1, d == 1 || d.value == nil {
                        // keep the larger known size
                    } else {
                        labels[l] = d
                    }
                    axis += 1
                }
            }
        }
        var out: [Dim] = []
        for term in equation.output {
            switch term {
            case .ellipsis: out += ellipsis
            case .label(let l): out.append(labels[l] ?? .unknown)
            }
        }
        return out
    }

    public var description: String { "equation=\"\(equation)\"" }
}
