import Foundation
import KilnIR
import KilnRuntime

/// Resize: separable resampling, one axis at a time. Nearest copies elements exactly (any dtype); linear and
/// cubic compute in Double and round back to the element type.
extension ShapeKernels {
    static let resampling: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(ResizeLayer.self) { layer, inputs, context in
            [.tensor(try resize(layer, inputs, threads: context.threads))]
        },
        cpuKernel(GridSampleLayer.self) { layer, inputs, _ in
            [.tensor(try gridSample(layer, x: try inputs.tensor(0), grid: try inputs.tensor(1)))]
        },
        cpuKernel(AffineGridLayer.self) { layer, inputs, _ in
            [.tensor(try affineGrid(layer, theta: try inputs.tensor(0), size: try inputs.tensor(1).intValues()))]
        },
    ]

    /// The taps of one resampled axis: for output j, `n` source indices (clamped) and weights; `outside[j]`
    /// marks tf_crop_and_resize positions that take the extrapolation value.
    struct AxisTaps {
        var n: Int
        var indices: [Int]
        var weights: [Double]
        var outside: [Bool]
    }

    static func resize(_ layer: ResizeLayer, _ inputs: [Value?], threads: Int) throws -> Tensor {
        let x = try inputs.tensor(0)
        let p = layer.parameters
        let roiValues = try inputs.optionalTensor(1)?.doubleValues()
        var runtimeScales = try inputs.optionalTensor(2)?.doubleValues()
        var runtimeSizes = try inputs.optionalTensor(3)?.intValues()
        if runtimeScales?.isEmpty == true { runtimeScales = nil }
        if runtimeSizes?.isEmpty == true { runtimeSizes = nil }
        let plan = try layer.plan(shape: x.shape, scales: runtimeScales, sizes: runtimeSizes)
        let rank = x.rank
        let axes = try ShapeAxes.normalize(p.axes ?? Array(0..<rank), rank: rank)
        var roi = Array(repeating: (0.0, 1.0), count: rank)
        if let r = roiValues, !r.isEmpty, p.coordinateMode == .tfCropAndResize {
            guard r.count == 2 * axes.count else { throw KilnError.invalidArgument("roi \(r) for axes \(axes)") }
            for (i, a) in axes.enumerated() { roi[a] = (r[i], r[i + axes.count]) }
        }
        var taps: [AxisTaps?] = Array(repeating: nil, count: rank)
        for a in 0..<rank {
            let identity = abs(plan.scales[a] - 1) < 1e-9 && plan.shape[a] == x.shape[a]
                && abs(roi[a].0) < 1e-9 && abs(roi[a].1 - 1) < 1e-9
            if identity { continue }
            guard x.shape[a] > 0 || plan.shape[a] == 0 else {
                throw KilnError.invalidArgument("cannot resize an empty axis to \(plan.shape[a])")
            }
            taps[a] = try axisTaps(p, input: x.shape[a], output: plan.shape[a], scale: plan.scales[a], roi: roi[a])
        }
        if p.mode == .nearest {
            // Nearest picks one source element per output coordinate: an exact, dtype-agnostic copy.
            let maps = (0..<rank).map { a -> [Int] in
                guard let t = taps[a] else { return Array(0..<x.shape[a]) }
                return (0..<plan.shape[a]).map { j in
                    if t.outside[j] { return -1 }
                    let k = (0..<t.n).first { t.weights[j * t.n + $0] > 0.5 } ?? 0
                    return t.indices[j * t.n + k]
                }
            }
            let fill = try ShapeCopy.scalar(x.dtype, p.extrapolationValue)
            return ShapeCopy.mapped(x, maps: maps, fill: fill, threads: threads)
        }
        var data = try x.doubleValues()
        var shape = x.shape
        for a in 0..<rank {
            guard let t = taps[a] else { continue }
            data = resample(data, shape: shape, axis: a, taps: t, output: plan.shape[a], fill: p.extrapolationValue)
            shape[a] = plan.shape[a]
        }
        return try x.dtype.visit(DoublesToTensor(values: data, shape: shape))
    }

    static func axisTaps(
        _ p: ResizeLayer.Parameters, input: Int, output: Int, scale: Double, roi: (Double, Double)
    ) throws -> AxisTaps {
        let outWidth = scale * Double(input)
        var taps = AxisTaps(n: 0, indices: [], weights: [], outside: Array(repeating: false, count: output))
        for j in 0..<output {
            let y = Double(j)
            var xo: Double
            switch p.coordinateMode {
            case .alignCorners: xo = outWidth == 1 ? 0 : y * Double(input - 1) / (outWidth - 1)
            case .asymmetric: xo = y / scale
            case .tfHalfPixelForNN: xo = (y + 0.5) / scale
            case .pytorchHalfPixel: xo = outWidth == 1 ? -0.5 : (y + 0.5) / scale - 0.5
            case .halfPixel: xo = (y + 0.5) / scale - 0.5
            case .halfPixelSymmetric:
                let adjustment = Double(output) / outWidth
                xo = Double(input) / 2 * (1 - adjustment) + (y + 0.5) / scale - 0.5
            case .tfCropAndResize:
                let span = (roi.1 - roi.0) * Double(input - 1)
                xo = (outWidth == 1 ? span / 2 : y * span / (outWidth - 1)) + roi.0 * Double(input - 1)
                if xo < 0 || xo > Double(input - 1) { taps.outside[j] = true }
            }
            guard xo.isFinite, abs(xo) < 1e15 else { throw KilnError.invalidArgument("resize coordinate \(xo)") }
            // The left tap is ceil(x) - 1 so the fraction lies in (0, 1], as the ONNX reference prefers.
            let base = Int(xo.rounded(.up)) - 1
            let ratio = xo - Double(base)
            let coeffs = coefficients(p, ratio: ratio, scale: scale)
            if taps.n == 0 { taps.n = coeffs.count }
            guard coeffs.count == taps.n else { throw KilnError.runtime("resize kernel width changed") }
            let first = base - taps.n / 2 + 1
            var w = coeffs
            if p.excludeOutside {
                for k in 0..<taps.n where first + k < 0 || first + k >= input { w[k] = 0 }
                let sum = w.reduce(0, +)
                if sum != 0 { w = w.map { $0 / sum } }
            }
            for k in 0..<taps.n {
                taps.indices.append(min(max(first + k, 0), input - 1))
                taps.weights.append(w[k])
            }
        }
        return taps
    }

    static func coefficients(_ p: ResizeLayer.Parameters, ratio r: Double, scale: Double) -> [Double] {
        let a = p.cubicA
        switch p.mode {
        case .nearest:
            if r == 1 { return [0, 1] }
            switch p.nearestMode {
            case .roundPreferFloor: return r <= 0.5 ? [1, 0] : [0, 1]
            case .roundPreferCeil: return r < 0.5 ? [1, 0] : [0, 1]
            case .floor: return [1, 0]
            case .ceil: return [0, 1]
            }
        case .linear:
            guard p.antialias else { return [1 - r, r] }
            let s = min(scale, 1)
            let start = Int((-1 / s).rounded(.down)) + 1
            let c = (start..<(2 - start)).map { i in min(max(1 - abs((Double(i) - r) * s), 0), 1) }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        case .cubic:
            guard p.antialias else {
                let q = 1 - r
                return [
                    ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                    ((a + 2) * r - (a + 3)) * r * r + 1,
                    ((a + 2) * q - (a + 3)) * q * q + 1,
                    ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a,
                ]
            }
            let s = min(scale, 1)
            let start = Int((-2 / s).rounded(.down)) + 1
            let c = (start..<(2 - start)).map { i -> Double in
                let t = abs(s * (Double(i) - r))
                if t <= 1 { return (a + 2) * t * t * t - (a + 3) * t * t + 1 }
                if t < 2 { return a * t * t * t - 5 * a * t * t + 8 * a * t - 4 * a }
                return 0
            }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        }
    }

    /// One separable pass: resamples `axis` of `data` (row-major `shape`) to `output` entries.
    static func resample(_ data: [Double], shape: [Int], axis: Int, taps: AxisTaps, output: Int, fill: Double) -> [Double] {
        let outer = Tensor.elementCount(Array(shape[..<axis]))
        let inner = Tensor.elementCount(Array(shape[(axis + 1)...]))
        let length = shape[axis]
        var result = [Double](repeating: 0, count: outer * output * inner)
        data.withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                for o in 0..<outer {
                    for j in 0..<output {
                        let row = (o * output + j) * inner
                        if taps.outside[j] {
                            for i in 0..<inner { dst[row + i] = fill }
                            continue
                        }
                        for k in 0..<taps.n {
                            let w = taps.weights[j * taps.n + k]
                            if w == 0 { continue }
                            let from = (o * length + taps.indices[j * taps.n + k]) * inner
                            for i in 0..<inner { dst[row + i] += w * src[from + i] }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Doubles back to an element type: integers round half to even and saturate, as the ONNX reference does.
    struct DoublesToTensor: ScalarVisitor {
        let values: [Double]
        let shape: [Int]
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            let integer = T.dtype.isInteger
            let (lo, hi) = integerRange(T.dtype)
            return Tensor.build(T.self, shape: shape) { out in
                for i in values.indices {
                    let v = values[i]
                    out[i] = integer ? T(castingFrom: min(max(v.rounded(.toNearestOrEven), lo), hi)) : T(castingFrom: v)
                }
            }
        }
    }

    static func integerRange(_ dtype: DType) -> (Double, Double) {
        switch dtype {
        case .int8: (-128, 127)
        case .uint8: (0, 255)
        case .int16: (-32768, 32767)
        case .uint16: (0, 65535)
        case .int32: (-2_147_483_648, 2_147_483_647)
        case .uint32: (0, 4_294_967_295)
        case .uint64: (0, 1.8446744073709552e19)
        default: (-9.223372036854775808e18, 9.223372036854775807e18)
        }
    }
}
