import KilnIR

/// The command line's shape notation: `NAME=VALUE` options and dimensions written `1x3x224x224`.
enum ShapeText {
    /// `NAME=VALUE` split at the last `=`.
    static func nameValue(_ spec: String, option: String) throws -> (name: String, value: Substring) {
        guard let eq = spec.lastIndex(of: "="), eq != spec.startIndex else {
            throw KilnError.invalidArgument("\(option) \(spec): expected NAME=VALUE")
        }
        return (String(spec[..<eq]), spec[spec.index(after: eq)...])
    }

    /// `1x3x224x224` as dimensions; every one present and not negative.
    static func dims(_ text: Substring, in spec: String, option: String) throws -> [Int] {
        let values = text.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw KilnError.invalidArgument("\(option) \(spec): dimensions must look like 1x3x224x224")
        }
        return values.compactMap { $0 }
    }

    /// An input's declared shape with the leading unknown dimension set to `batch` and other unknown ones to 1.
    static func batchShape(_ dims: [Dim], batch: Int) -> [Int] {
        dims.enumerated().map { index, dim in dim.value ?? (index == 0 ? batch : 1) }
    }
}
