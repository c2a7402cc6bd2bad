import KilnIR

/// Gather and scatter operators and element selection: Gather, GatherElements, GatherND, Scatter,
/// ScatterElements, ScatterND, OneHot, NonZero, Compress, ReverseSequence, Unique.
enum IndexingImporters {
    static let table: [OperatorImporter] = [
        .layer("Gather") { c in GatherLayer(axis: try c.int("axis", default: 0)) },
        .layer("GatherElements", since: 11) { c in GatherElementsLayer(axis: try c.int("axis", default: 0)) },
        .layer("GatherND", since: 11) { c in GatherNDLayer(batchDims: try c.int("batch_dims", default: 0)) },
        .layer("Scatter", since: 9) { c in ScatterElementsLayer(axis: try c.int("axis", default: 0), reduction: .none) },
        .layer("ScatterElements", since: 11) { c in
            ScatterElementsLayer(axis: try c.int("axis", default: 0), reduction: try reduction(c))
        },
        .layer("ScatterND", since: 11) { c in ScatterNDLayer(reduction: try reduction(c)) },
        .layer("OneHot", since: 9) { c in OneHotLayer(axis: try c.int("axis", default: -1)) },
        .layer("NonZero", since: 9) { _ in NonZeroLayer() },
        .layer("Compress", since: 9) { c in CompressLayer(axis: try c.optionalInt("axis")) },
        .layer("ReverseSequence", since: 10) { c in
            ReverseSequenceLayer(batchAxis: try c.int("batch_axis", default: 1), timeAxis: try c.int("time_axis", default: 0))
        },
        .layer("Unique", since: 11) { c in
            UniqueLayer(sorted: try c.int("sorted", default: 1) != 0, axis: try c.optionalInt("axis"))
        },
    ]

    static func reduction(_ c: ImportContext) throws -> ScatterReduction {
        let name = try c.string("reduction", default: "none")
        guard let r = ScatterReduction(rawValue: name) else { throw c.unsupported("scatter reduction '\(name)'") }
        return r
    }
}
