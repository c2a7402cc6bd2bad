/// Removes stop words from a [C] or [1, C] string tensor and changes case (ONNX StringNormalizer). The output
/// keeps the input's rank; when every element is removed it holds one empty string.
public struct StringNormalizerLayer: Layer {
    public enum CaseAction: String, Sendable, Codable { case none, lower, upper }
    public static let kind = LayerKind("text.normalize")
    public var caseAction: CaseAction
    public var caseSensitive: Bool
    public var stopwords: [String]
    /// Kept for the text form; case mapping is Unicode's default, which matches en_US and most locales.
    public var locale: String

    public init(caseAction: CaseAction, caseSensitive: Bool, stopwords: [String], locale: String) {
        self.caseAction = caseAction
        self.caseSensitive = caseSensitive
        self.stopwords = stopwords
        self.locale = locale
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let x = inputs.first?.tensorType else { return [.tensor(TensorType(.string, nil))] }
        guard x.dtype == .string else { throw KilnError.typeMismatch("StringNormalizer needs a string tensor") }
        guard let shape = x.shape else { return [.tensor(TensorType(.string, nil))] }
        guard shape.count == 1 || shape.count == 2 else {
            throw KilnError.shapeMismatch("StringNormalizer input must be [C] or [1, C]")
        }
        if stopwords.isEmpty { return [.tensor(x)] }
        return [.tensor(TensorType(.string, shape.count == 1 ? [.unknown] : [1, .unknown]))]
    }

    public var description: String {
        "case=\(caseAction.rawValue) caseSensitive=\(caseSensitive) stopwords=\(stopwords.count) locale=\(locale)"
    }
}

/// Whether each string matches a regular expression in full (ONNX RegexFullMatch; RE2 syntax subset).
public struct RegexFullMatchLayer: Layer {
    public static let kind = LayerKind("text.regexFullMatch")
    public var pattern: String

    public init(pattern: String) { self.pattern = pattern }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        [.tensor(TensorType(.bool, inputs.first?.tensorType?.shape))]
    }

    public var description: String { "pattern=\(pattern.debugDescription)" }
}

/// Element-wise concatenation of two string tensors with broadcasting.
public struct StringConcatLayer: Layer {
    public static let kind = LayerKind("text.concat")
    public init() {}

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard inputs.count == 2, let a = inputs[0].tensorType?.shape, let b = inputs[1].tensorType?.shape else {
            return [.tensor(TensorType(.string, nil))]
        }
        return [.tensor(TensorType(.string, try Broadcast.dims(a, b)))]
    }
}

/// Splits each string on a delimiter (or on runs of whitespace when the delimiter is empty). Outputs the
/// pieces padded with "" to [..., maxPieces] and the piece count per element (int64).
public struct StringSplitLayer: Layer {
    public static let kind = LayerKind("text.split")
    public var delimiter: String
    /// At most this many splits per string; nil = unlimited.
    public var maxSplit: Int?

    public init(delimiter: String, maxSplit: Int?) {
        self.delimiter = delimiter
        self.maxSplit = maxSplit
    }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        let shape = inputs.first?.tensorType?.shape
        return [
            .tensor(TensorType(.string, shape.map { $0 + [.unknown] })),
            .tensor(TensorType(.int64, shape)),
        ]
    }

    public var description: String {
        "delimiter=\(delimiter.debugDescription) maxsplit=\(maxSplit.map(String.init) ?? "none")"
    }
}

/// Counts n-grams (with skips) of a pool in each row of a [C] or [B, C] int or string tensor and weights the
/// counts (ONNX TfIdfVectorizer). Output: float [outputSize] or [B, outputSize].
public struct TfIdfVectorizerLayer: Layer {
    public enum Mode: String, Sendable, Codable {
        case tf = "TF"
        case idf = "IDF"
        case tfidf = "TFIDF"
    }
    public static let kind = LayerKind("text.tfidf")
    public var mode: Mode
    public var minGram: Int
    public var maxGram: Int
    public var maxSkip: Int
    /// Start offset in the pool of the 1-grams, 2-grams, ...
    public var ngramCounts: [Int]
    /// Output column of each pool n-gram, in pool order.
    public var ngramIndexes: [Int]
    public var poolInts: [Int64]
    public var poolStrings: [String]
    public var weights: [Float]

    public init(
        mode: Mode, minGram: Int, maxGram: Int, maxSkip: Int, ngramCounts: [Int], ngramIndexes: [Int],
        poolInts: [Int64], poolStrings: [String], weights: [Float]
    ) {
        self.mode = mode
        self.minGram = minGram
        self.maxGram = maxGram
        self.maxSkip = maxSkip
        self.ngramCounts = ngramCounts
        self.ngramIndexes = ngramIndexes
        self.poolInts = poolInts
        self.poolStrings = poolStrings
        self.weights = weights
    }

    public var outputSize: Int { (ngramIndexes.max() ?? -1) + 1 }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        guard let shape = inputs.first?.tensorType?.shape else { return [.tensor(TensorType(.float32, nil))] }
        if shape.count == 2 { return [.tensor(TensorType(.float32, [shape[0], .value(outputSize)]))] }
        return [.tensor(TensorType(.float32, dims: [outputSize]))]
    }

    public var description: String {
        let pool = poolStrings.isEmpty ? "\(poolInts.count) ints" : "\(poolStrings.count) strings"
        return "mode=\(mode.rawValue) grams=\(minGram)...\(maxGram) skip=\(maxSkip) pool=\(pool) outputs=\(outputSize)"
    }
}
