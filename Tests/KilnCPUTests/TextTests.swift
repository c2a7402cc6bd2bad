import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

private func strings(_ shape: [Int], _ s: [String]) -> Tensor { Tensor(shape: shape, strings: s) }

@Suite struct TextTests {
    @Test func normalizerRemovesStopwordsAndChangesCase() throws {
        let x = strings([1, 4], ["Monday", "tuesday", "MONDAY", "Été"])
        let insensitive = StringNormalizerLayer(
            caseAction: .upper, caseSensitive: false, stopwords: ["monday"], locale: "en_US")
        let y = try LayerRunner.run(insensitive, x)
        #expect(y.shape == [1, 2])
        #expect(y.strings == ["TUESDAY", "ÉTÉ"])
        let sensitive = StringNormalizerLayer(
            caseAction: .lower, caseSensitive: true, stopwords: ["Monday"], locale: "en_US")
        #expect(try LayerRunner.run(sensitive, x).strings == ["tuesday", "monday", "été"])
        let everything = StringNormalizerLayer(caseAction: .none, caseSensitive: false, stopwords: ["a"], locale: "")
        let empty = try LayerRunner.run(everything, strings([2], ["a", "A"]))
        #expect(empty.shape == [1] && empty.strings == [""])
    }

    @Test func regexMatchesWholeStrings() throws {
        let layer = RegexFullMatchLayer(pattern: #"a|ab|\w+@(x|y)\.com"#)
        let y = try LayerRunner.run(layer, strings([2, 2], ["ab", "abc", "me@y.com", "me@z.com"]))
        #expect(y.dtype == .bool && y.shape == [2, 2])
        #expect(y.scalars(as: Bool.self) == [true, false, true, false])
        #expect(throws: KilnError.self) { try LayerRunner.run(RegexFullMatchLayer(pattern: "("), strings([1], ["a"])) }
    }

    @Test func concatBroadcasts() throws {
        let y = try LayerRunner.run(StringConcatLayer(), strings([2, 1], ["a", "的"]), strings([3], ["x", "", "z"]))
        #expect(y.shape == [2, 3])
        #expect(y.strings == ["ax", "a", "az", "的x", "的", "的z"])
    }

    @Test func splitFollowsPythonRules() throws {
        let x = strings([3], ["a,b,,c", " two  words ", ""])
        let comma = try LayerRunner.run(
            StringSplitLayer(delimiter: ",", maxSplit: nil), inputs: [.tensor(x)], outputCount: 2)
        #expect(try comma[0].asTensor().shape == [3, 4])
        #expect(try comma[0].asTensor().strings == ["a", "b", "", "c", " two  words ", "", "", "", "", "", "", ""])
        #expect(try comma[1].asTensor().scalars(as: Int64.self) == [4, 1, 1])
        let space = try LayerRunner.run(
            StringSplitLayer(delimiter: "", maxSplit: 1), inputs: [.tensor(x)], outputCount: 2)
        #expect(try space[0].asTensor().strings == ["a,b,,c", "", "two", "words ", "", ""])
        #expect(try space[1].asTensor().scalars(as: Int64.self) == [1, 2, 0])
    }

    @Test func tfidfCountsSkipGrams() throws {
        // Pool: unigrams [2, 3, 5, 4], bigrams (5,6) (7,8) (6,7) -> columns 0...6.
        let layer = TfIdfVectorizerLayer(
            mode: .tf, minGram: 1, maxGram: 2, maxSkip: 5, ngramCounts: [0, 4], ngramIndexes: Array(0...6),
            poolInts: [2, 3, 5, 4, 5, 6, 7, 8, 6, 7], poolStrings: [], weights: [])
        let x = Tensor(shape: [12], scalars: [Int32](arrayLiteral: 1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8))
        let y = try LayerRunner.run(layer, x)
        #expect(y.scalars(as: Float.self) == [0, 3, 1, 0, 1, 3, 1])
        let weighted = TfIdfVectorizerLayer(
            mode: .tfidf, minGram: 2, maxGram: 2, maxSkip: 0, ngramCounts: [0, 0], ngramIndexes: [1, 0],
            poolInts: [], poolStrings: ["b", "a", "a", "c"], weights: [2, 0.5])
        let z = try LayerRunner.run(weighted, strings([2, 3], ["b", "a", "c", "b", "a", "b"]))
        #expect(z.shape == [2, 2])
        #expect(z.scalars(as: Float.self) == [2, 0.5, 0, 0.5])
    }

    @Test func typeInference() throws {
        let split = StringSplitLayer(delimiter: "", maxSplit: nil)
        let t = try split.inferTypes([LayerInput(type: .tensor(TensorType(.string, dims: [4])))])
        #expect(t[0] == .tensor(TensorType(.string, [4, .unknown])))
        #expect(t[1] == .tensor(TensorType(.int64, dims: [4])))
        let tfidf = TfIdfVectorizerLayer(
            mode: .tf, minGram: 1, maxGram: 1, maxSkip: 0, ngramCounts: [0], ngramIndexes: [2, 0],
            poolInts: [1, 2], poolStrings: [], weights: [])
        let u = try tfidf.inferTypes([LayerInput(type: .tensor(TensorType(.int64, [.symbol("b"), 9])))])
        #expect(u[0] == .tensor(TensorType(.float32, [.symbol("b"), 3])))
    }
}
