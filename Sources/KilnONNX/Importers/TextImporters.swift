import KilnIR

/// The string operators and TfIdfVectorizer.
enum TextImporters {
    static let table: [OperatorImporter] = [
        .layer("StringNormalizer", since: 10) { c in
            let action = try c.string("case_change_action", default: "NONE")
            guard let caseAction = StringNormalizerLayer.CaseAction(rawValue: action.lowercased()) else {
                throw c.invalid("case_change_action must be NONE, LOWER or UPPER, is '\(action)'")
            }
            return StringNormalizerLayer(
                caseAction: caseAction, caseSensitive: try c.int("is_case_sensitive", default: 0) != 0,
                stopwords: try c.strings("stopwords", default: []), locale: try c.string("locale", default: "en_US"))
        },
        .layer("RegexFullMatch", since: 20) { c in RegexFullMatchLayer(pattern: try c.string("pattern")) },
        .layer("StringConcat", since: 20) { _ in StringConcatLayer() },
        .layer("StringSplit", since: 20) { c in
            StringSplitLayer(delimiter: try c.string("delimiter", default: ""), maxSplit: try c.optionalInt("maxsplit"))
        },
        .layer("TfIdfVectorizer", since: 9) { c in
            let mode = try c.string("mode")
            guard let parsed = TfIdfVectorizerLayer.Mode(rawValue: mode) else {
                throw c.invalid("mode must be TF, IDF or TFIDF, is '\(mode)'")
            }
            let layer = TfIdfVectorizerLayer(
                mode: parsed, minGram: try c.int("min_gram_length"), maxGram: try c.int("max_gram_length"),
                maxSkip: try c.int("max_skip_count"), ngramCounts: try c.ints("ngram_counts"),
                ngramIndexes: try c.ints("ngram_indexes"),
                poolInts: try c.ints("pool_int64s", default: []).map { Int64($0) },
                poolStrings: try c.strings("pool_strings", default: []), weights: try c.floats("weights", default: []))
            guard layer.minGram >= 1, layer.maxGram >= layer.minGram, layer.maxSkip >= 0 else {
                throw c.invalid("TfIdfVectorizer needs 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0")
            }
            guard layer.poolInts.isEmpty != layer.poolStrings.isEmpty else {
                throw c.invalid("TfIdfVectorizer needs exactly one of pool_int64s and pool_strings")
            }
            return layer
        },
    ]
}
