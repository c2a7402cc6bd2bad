import KilnIR

extension Comparison {
    /// The outputs named in `names` that are not bit-for-bit the same in `a` and `b` (missing counts as
    /// different), each with why; empty when all are the same. For runs that must agree exactly: an engine and
    /// the same engine saved and loaded, one context and several.
    public static func differingOutputs(_ a: [String: Value], _ b: [String: Value], names: [String]) -> [String] {
        names.compactMap { name in
            guard case .tensor(let x)? = a[name], case .tensor(let y)? = b[name] else { return "\(name): missing" }
            guard x.dtype == y.dtype, x.shape == y.shape else { return "\(name): \(x.type) against \(y.type)" }
            let same = x.withUnsafeRawBytes { rx in y.withUnsafeRawBytes { ry in rx.elementsEqual(ry) } }
            return same ? nil : "\(name): values differ"
        }
    }
}

/// Damage for fuzz tests: one of bit flips, a truncation, overwritten bytes, or inserted bytes.
public enum Damage {
    public static func apply(to bytes: inout [UInt8], using generator: inout SeededGenerator) {
        guard !bytes.isEmpty else { return }
        switch Int.random(in: 0..<4, using: &generator) {
        case 0:
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
            }
        case 1:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
        case 2:
            let i = Int.random(in: 0..<bytes.count, using: &generator)
            for j in i..<min(bytes.count, i + 4) { bytes[j] = UInt8.random(in: 0...255, using: &generator) }
        default:
            let i = Int.random(in: 0..<bytes.count, using: &generator)
            let inserted = (0..<Int.random(in: 1...16, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            bytes.insert(contentsOf: inserted, at: i)
        }
    }
}
