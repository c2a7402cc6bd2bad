import KilnIR

/// A named, typed graph boundary value as reports show it.
struct Port: Encodable {
    var name: String
    var type: String

    static func list(_ values: [GraphValue]) -> [Port] {
        values.map { Port(name: $0.name, type: $0.type?.description ?? "?") }
    }
}

/// Text pieces shared by `kiln inspect`'s model and plan reports.
enum ReportLines {
    static func ports(_ title: String, _ ports: [Port]) -> [String] {
        ["\(title):"] + ports.map { "  \($0.name): \($0.type)" }
    }

    /// A histogram, most frequent first.
    static func counts(_ title: String, _ counts: [String: Int]) -> [String] {
        ["\(title):"]
            + counts.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }).map {
                "  \($0.key.padding(toLength: 28, withPad: " ", startingAt: 0)) \($0.value)"
            }
    }

    static func layerCounts(_ graph: Graph) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: graph.kindHistogram.map { ($0.key.name, $0.value) })
    }
}
