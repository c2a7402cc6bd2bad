import KilnIR

/// The n-gram table of one TfIdfVectorizer and its counting loop. Tokens are mapped to Int64 (string pools
/// through a vocabulary; strings outside it become -1 and match nothing) so one dictionary of n-grams serves
/// both pool kinds.
struct TfIdfCounter {
    let layer: TfIdfVectorizerLayer
    /// n-gram (token ids) -> output column.
    private var grams: [[Int64]: Int] = [:]
    private var vocabulary: [String: Int64] = [:]
    private let outputSize: Int

    init(_ layer: TfIdfVectorizerLayer) throws {
        self.layer = layer
        outputSize = layer.outputSize
        let useStrings = !layer.poolStrings.isEmpty
        var pool: [Int64] = layer.poolInts
        if useStrings {
            pool = layer.poolStrings.map { s in
                if let id = vocabulary[s] { return id }
                let id = Int64(vocabulary.count)
                vocabulary[s] = id
                return id
            }
        }
        var gramIndex = 0
        for (i, start) in layer.ngramCounts.enumerated() {
            let n = i + 1
            let end = i + 1 < layer.ngramCounts.count ? layer.ngramCounts[i + 1] : pool.count
            guard start >= 0, end <= pool.count, start <= end else {
                throw KilnError.invalidArgument("TfIdfVectorizer ngram_counts \(layer.ngramCounts) do not fit the pool")
            }
            let count = (end - start) / n
            for g in 0..<count {
                defer { gramIndex += 1 }
                guard n >= layer.minGram, n <= layer.maxGram else { continue }
                guard gramIndex < layer.ngramIndexes.count else {
                    throw KilnError.invalidArgument("TfIdfVectorizer has fewer ngram_indexes than pool n-grams")
                }
                let column = layer.ngramIndexes[gramIndex]
                guard column >= 0, column < outputSize else {
                    throw KilnError.invalidArgument("TfIdfVectorizer ngram index \(column) is out of range")
                }
                let key = Array(pool[(start + g * n)..<(start + (g + 1) * n)])
                if grams[key] == nil { grams[key] = column }
            }
        }
    }

    func run(_ x: Tensor) throws -> Tensor {
        let tokens: [Int64]
        if x.dtype == .string {
            tokens = x.strings.map { vocabulary[$0] ?? -1 }
        } else if x.dtype == .int32 || x.dtype == .int64 {
            tokens = try x.int64Values()
        } else {
            throw KilnError.typeMismatch("TfIdfVectorizer needs string, int32 or int64 input, got \(x.dtype.onnxName)")
        }
        let rows: Int
        let width: Int
        switch x.rank {
        case 0: (rows, width) = (1, 1)
        case 1: (rows, width) = (1, x.shape[0])
        case 2: (rows, width) = (x.shape[0], x.shape[1])
        default: throw KilnError.shapeMismatch("TfIdfVectorizer input must be [C] or [B, C], is \(x.shape)")
        }
        var counts = [Double](
            repeating: 0, count: try MiscSupport.checkedCount([rows, outputSize], "TfIdfVectorizer output"))
        var gram: [Int64] = []
        gram.reserveCapacity(max(layer.maxGram, 1))
        if !grams.isEmpty && layer.maxGram >= 1 {
            for r in 0..<rows {
                for skip in 1...(max(layer.maxSkip, 0) + 1) {
                    for start in 0..<width {
                        gram.removeAll(keepingCapacity: true)
                        var position = start
                        for n in 1...layer.maxGram {
                            guard position < width else { break }
                            gram.append(tokens[r * width + position])
                            position += skip
                            // Unigrams do not depend on the skip, so they are counted in the first pass only.
                            if n >= layer.minGram && (n > 1 || skip == 1), let column = grams[gram] {
                                counts[r * outputSize + column] += 1
                            }
                        }
                    }
                }
            }
        }
        let w = layer.weights
        if !w.isEmpty && w.count < outputSize && layer.mode != .tf {
            throw KilnError.invalidArgument("TfIdfVectorizer has \(w.count) weights for \(outputSize) outputs")
        }
        for i in counts.indices {
            let f = counts[i]
            let column = i % max(outputSize, 1)
            switch layer.mode {
            case .tf: break
            case .idf: counts[i] = f > 0 ? (w.isEmpty ? 1 : Double(w[column])) : 0
            case .tfidf: counts[i] = w.isEmpty ? f : Double(w[column]) * f
            }
        }
        let shape = x.rank == 2 ? [rows, outputSize] : [outputSize]
        return try MiscSupport.tensor(.float32, shape: shape, counts)
    }
}
