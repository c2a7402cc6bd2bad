import Foundation
import KilnIR

/// GridSample and AffineGrid: sampling at normalised coordinates in [-1, 1], 2-D or 3-D.
extension ShapeKernels {
    static func gridSample(_ layer: GridSampleLayer, x: Tensor, grid: Tensor) throws -> Tensor {
        let spatial = x.rank - 2
        guard spatial >= 1, grid.rank == x.rank, grid.shape[0] == x.shape[0], grid.shape[x.rank - 1] == spatial else {
            throw KilnError.shapeMismatch("GridSample of \(x.shape) with grid \(grid.shape)")
        }
        let (n, c) = (x.shape[0], x.shape[1])
        let dims = Array(x.shape[2...])
        let outSpatial = Array(grid.shape[1..<(grid.rank - 1)])
        let points = Tensor.elementCount(outSpatial)
        let plane = Tensor.elementCount(dims)
        let data = try x.doubleValues()
        let g = try grid.doubleValues()
        let strides = Broadcast.strides(dims)
        var out = [Double](repeating: 0, count: n * c * points)
        let lo = dims.map { _ in layer.alignCorners ? 0.0 : -0.5 }
        let hi = dims.map { Double($0) - (layer.alignCorners ? 1.0 : 0.5) }
        for b in 0..<n {
            for pt in 0..<points {
                // Grid's last axis lists (x, y[, z]): the innermost spatial axis first.
                var taps: [[(index: Int, weight: Double)]] = []
                for d in 0..<spatial {
                    let normalized = Float(g[(b * points + pt) * spatial + (spatial - 1 - d)])
                    let len = Float(dims[d])
                    var v = Double(layer.alignCorners ? (normalized + 1) / 2 * (len - 1) : ((normalized + 1) * len - 1) / 2)
                    guard v.isFinite, abs(v) < 1e9 else {
                        taps.append([(-1, 0)])
                        continue
                    }
                    if layer.mode == .nearest { v = v.rounded(.toNearestOrEven) }
                    if v < lo[d] || v > hi[d] {
                        if layer.padding == .border { v = min(max(v, 0), Double(dims[d] - 1)) }
                        if layer.padding == .reflection { v = reflect(v, lo[d], hi[d]) }
                    }
                    taps.append(axisTaps(v, layer: layer, length: dims[d], lo: lo[d], hi: hi[d]))
                }
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    out[(b * c + ch) * points + pt] = combine(taps, strides: strides) { data[base + $0] }
                }
            }
        }
        return try x.dtype.visit(DoublesToTensor(values: out, shape: [n, c] + outSpatial))
    }

    /// Source indices (-1 = zero padding) and weights of one axis at coordinate `v`.
    static func axisTaps(
        _ v: Double, layer: GridSampleLayer, length: Int, lo: Double, hi: Double
    ) -> [(index: Int, weight: Double)] {
        func pixel(_ i: Int) -> Int {
            switch layer.padding {
            case .zeros: return i >= 0 && i < length ? i : -1
            case .border: return min(max(i, 0), length - 1)
            case .reflection: return min(max(Int(reflect(Double(i), lo, hi)), 0), length - 1)
            }
        }
        switch layer.mode {
        case .nearest:
            return [(pixel(Int(v)), 1)]
        case .linear:
            let x0 = v.rounded(.down)
            let t = v - x0
            return [(pixel(Int(x0)), 1 - t), (pixel(Int(x0) + 1), t)]
        case .cubic:
            let x0 = v.rounded(.down)
            let t = abs(v - x0)
            let a = -0.75
            let w = [
                ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                ((a + 2) * t - (a + 3)) * t * t + 1,
                ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
            ]
            return (0..<4).map { (pixel(Int(x0) - 1 + $0), w[$0]) }
        }
    }

    /// Σ over the tensor product of per-axis taps; a tap with index -1 contributes zero.
    static func combine(
        _ taps: [[(index: Int, weight: Double)]], strides: [Int], _ value: (Int) -> Double
    ) -> Double {
        func go(_ d: Int, _ offset: Int, _ weight: Double) -> Double {
            if d == taps.count { return weight * value(offset) }
            var sum = 0.0
            for t in taps[d] where t.index >= 0 && t.weight != 0 {
                sum += go(d + 1, offset + t.index * strides[d], weight * t.weight)
            }
            return sum
        }
        return go(0, 0, 1)
    }

    /// Reflects `x` into [lo, hi] by bouncing off the borders.
    static func reflect(_ x: Double, _ lo: Double, _ hi: Double) -> Double {
        let range = hi - lo
        guard range > 0 else { return lo }
        if x < lo {
            let dx = lo - x
            let k = (dx / range).rounded(.towardZero)
            let r = dx - k * range
            return Int(k) % 2 == 0 ? lo + r : hi - r
        }
        if x > hi {
            let dx = x - hi
            let k = (dx / range).rounded(.towardZero)
            let r = dx - k * range
            return Int(k) % 2 == 0 ? hi - r : lo + r
        }
        return x
    }

    static func affineGrid(_ layer: AffineGridLayer, theta: Tensor, size: [Int]) throws -> Tensor {
        let spatial = size.count - 2
        guard spatial == 2 || spatial == 3, theta.rank == 3, theta.shape[0] == size[0],
            theta.shape[1] == spatial, theta.shape[2] == spatial + 1, size.allSatisfy({ $0 >= 0 })
        else { throw KilnError.shapeMismatch("AffineGrid of theta \(theta.shape) for size \(size)") }
        let n = size[0]
        let dims = Array(size[2...])
        let t = try theta.doubleValues()
        // Base coordinates per axis, in the reference's order: x (innermost axis) first.
        let coords = dims.map { s -> [Double] in
            (0..<s).map { i in
                if layer.alignCorners { return s == 1 ? -1 : -1 + Double(i) * 2 / Double(s - 1) }
                return -1 + (Double(i) + 0.5) * 2 / Double(s)
            }
        }
        let points = Tensor.elementCount(dims)
        var out = [Double](repeating: 0, count: n * points * spatial)
        let strides = Broadcast.strides(dims)
        for b in 0..<n {
            for p in 0..<points {
                var homo = [Double](repeating: 1, count: spatial + 1)
                for d in 0..<spatial { homo[spatial - 1 - d] = coords[d][(p / strides[d]) % dims[d]] }
                for r in 0..<spatial {
                    var s = 0.0
                    for k in 0...spatial { s += t[(b * spatial + r) * (spatial + 1) + k] * homo[k] }
                    out[(b * points + p) * spatial + r] = s
                }
            }
        }
        return try theta.dtype.visit(DoublesToTensor(values: out, shape: [n] + dims + [spatial]))
    }
}
