import KilnIR

/// The ONNX backend runner's rule: same dtype and shape, |a - e| <= atol + rtol * |e| element-wise, NaN equals
/// NaN, strings equal. Returns nil when equal, or a one-line reason.
public enum Comparison {
    public static func mismatch(
        _ actual: Tensor, _ expected: Tensor, rtol: Double = 1e-3, atol: Double = 1e-7
    ) -> String? {
        guard actual.dtype == expected.dtype else {
            return "dtype \(actual.dtype.onnxName), expected \(expected.dtype.onnxName)"
        }
        guard actual.shape == expected.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
        if actual.dtype == .string {
            let a = actual.strings
            let e = expected.strings
            if let i = a.indices.first(where: { a[$0] != e[$0] }) {
                return "element \(i) is \"\(a[i])\", expected \"\(e[i])\""
            }
            return nil
        }
        guard let a = try? actual.doubleValues(), let e = try? expected.doubleValues() else {
            return actual.withUnsafeRawBytes { ra in expected.withUnsafeRawBytes { re in ra.elementsEqual(re) } }
                ? nil : "raw bytes differ"
        }
        var worst: (index: Int, excess: Double)? = nil
        var bad = 0
        for i in a.indices {
            let x = a[i]
            let y = e[i]
            if x.isNaN && y.isNaN { continue }
            if x == y { continue }
            let diff = abs(x - y)
            let limit = atol + rtol * abs(y)
            if !(diff <= limit) {
                bad += 1
                let excess = diff.isNaN ? .infinity : diff - limit
                if worst == nil || excess > worst!.excess { worst = (i, excess) }
            }
        }
        guard let worst else { return nil }
        return
            "\(bad) of \(a.count) elements differ; worst at \(worst.index): \(a[worst.index]) vs expected \(e[worst.index])"
    }

    /// Compares values recursively (sequences and optionals element by element).
    public static func mismatch(_ actual: Value, _ expected: Value, rtol: Double = 1e-3, atol: Double = 1e-7) -> String?
    {
        switch (actual, expected) {
        case (.tensor(let a), .tensor(let e)): return mismatch(a, e, rtol: rtol, atol: atol)
        case (.sequence(let a, _), .sequence(let e, _)):
            guard a.count == e.count else { return "sequence of \(a.count), expected \(e.count)" }
            for (i, (x, y)) in zip(a, e).enumerated() {
                if let m = mismatch(x, y, rtol: rtol, atol: atol) { return "sequence element \(i): \(m)" }
            }
            return nil
        case (.optional(let a, _), .optional(let e, _)):
            switch (a, e) {
            case (nil, nil): return nil
            case (let x?, let y?): return mismatch(x, y, rtol: rtol, atol: atol)
            default: return a == nil ? "optional is empty, expected a value" : "optional has a value, expected empty"
            }
        case (.optional(let a?, _), _): return mismatch(a, expected, rtol: rtol, atol: atol)
        case (_, .optional(let e?, _)): return mismatch(actual, e, rtol: rtol, atol: atol)
        default: return "got a \(actual.kindName), expected a \(expected.kindName)"
        }
    }
}
