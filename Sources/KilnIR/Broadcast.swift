/// NumPy-style multidirectional broadcasting, shared by type inference and kernels.
public enum Broadcast {
    /// The broadcast shape of concrete shapes, or an error naming both.
    public static func shape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                throw KilnError.shapeMismatch("shapes \(a) and \(b) do not broadcast")
            }
        }
        return out
    }

    public static func shape(_ shapes: [[Int]]) throws -> [Int] {
        try shapes.reduce([]) { try shape($0, $1) }
    }

    /// The broadcast of static shapes; unknown where it cannot be decided.
    public static func dims(_ a: [Dim], _ b: [Dim]) throws -> [Dim] {
        let rank = max(a.count, b.count)
        var out = [Dim](repeating: 1, count: rank)
        for i in 0..<rank {
            let da: Dim = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db: Dim = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            switch (da, db) {
            case (.value(let x), .value(let y)):
                guard x == y || x == 1 || y == 1 else {
                    throw KilnError.shapeMismatch("shapes \(a) and \(b) do not broadcast")
                }
                out[i] = .value(x == 1 ? y : x)
            case (.value(1), _): out[i] = db
            case (_, .value(1)): out[i] = da
            case (.symbol(let x), .symbol(let y)) where x == y: out[i] = da
            case (.symbol, .value), (.unknown, .value): out[i] = db
            case (.value, .symbol), (.value, .unknown): out[i] = da
            default: out[i] = .unknown
            }
        }
        return out
    }

    /// Row-major strides of `shape`.
    public static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= shape[i]
        }
        return strides
    }

    /// Strides for reading a tensor of `shape` as if it had the larger `outShape` (0 on broadcast axes).
    public static func strides(of shape: [Int], broadcastTo outShape: [Int]) -> [Int] {
        let own = strides(shape)
        let offset = outShape.count - shape.count
        return (0..<outShape.count).map { i in
            i < offset || shape[i - offset] == 1 ? 0 : own[i - offset]
        }
    }
}
