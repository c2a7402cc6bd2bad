import Foundation
import KilnIR
import KilnRuntime

/// A Double from a roi tensor as an Int, saturating instead of trapping on NaN, infinities and huge values.
func roiInt(_ value: Double) -> Int {
    guard value.isFinite else { return 0 }
    return Int(max(min(value, 1e15), -1e15))
}

extension PoolingKernels {
    static func maxUnpool(_ layer: MaxUnpoolLayer, _ x: Tensor, _ indices: Tensor, _ shape: [Int]?) throws -> Tensor {
        guard x.rank >= 3 else {
            throw KilnError.shapeMismatch("MaxUnpool needs an N x C x spatial input, got \(x.shape)")
        }
        guard indices.shape == x.shape else {
            throw KilnError.shapeMismatch("MaxUnpool indices \(indices.shape) do not match input \(x.shape)")
        }
        try layer.window.validate(spatialRank: x.rank - 2)
        let natural = Array(x.shape[..<2]) + layer.defaultOutput(Array(x.shape[2...]))
        let outShape = shape ?? natural
        guard outShape.count == x.rank, outShape.allSatisfy({ $0 >= 0 }), natural.allSatisfy({ $0 >= 0 }) else {
            throw KilnError.invalidArgument("MaxUnpool output shape \(outShape) does not fit input \(x.shape)")
        }
        var elements = 1
        for d in outShape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow, product <= 1 << 40 else {
                throw KilnError.invalidArgument("MaxUnpool output shape \(outShape) is too large")
            }
            elements = product
        }
        let positions = try indices.int64Values()
        // Indices address the natural (inverse-pool) shape; a given output shape pads or crops it at the end of
        // each axis, as the ONNX reference does.
        let total = natural.reduce(1, *)
        let targets: [Int]
        if outShape == natural {
            targets = try positions.map { p in
                guard p >= 0, p < Int64(total) else {
                    throw KilnError.invalidArgument("MaxUnpool index \(p) is outside the output (\(total) elements)")
                }
                return Int(p)
            }
        } else {
            let from = Broadcast.strides(natural)
            let to = Broadcast.strides(outShape)
            targets = try positions.map { p in
                guard p >= 0, p < Int64(total) else {
                    throw KilnError.invalidArgument("MaxUnpool index \(p) is outside the output (\(total) elements)")
                }
                var offset = 0
                for d in natural.indices {
                    let i = (Int(p) / from[d]) % natural[d]
                    guard i < outShape[d] else { return -1 }
                    offset += i * to[d]
                }
                return offset
            }
        }
        struct Scatter: ScalarVisitor {
            let x: Tensor
            let targets: [Int]
            let shape: [Int]
            func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
                x.withUnsafeBuffer(as: T.self) { src in
                    Tensor.build(T.self, shape: shape) { out in
                        for (i, t) in targets.enumerated() where t >= 0 { out[t] = src[i] }
                    }
                }
            }
        }
        return try x.dtype.visit(Scatter(x: x, targets: targets, shape: outShape))
    }

    static func roiPool(_ layer: RoiPoolLayer, _ inputs: [Value?], _ threads: Int) throws -> Tensor {
        let x = try inputs.tensor(0)
        let rois = try inputs.tensor(1)
        guard x.rank == 4 else {
            throw KilnError.shapeMismatch("roi pooling needs an N x C x H x W input, got \(x.shape)")
        }
        let width = layer.method == .quantizedMax ? 5 : 4
        guard rois.rank == 2, rois.shape[1] == width else {
            throw KilnError.shapeMismatch("rois must be R x \(width), got \(rois.shape)")
        }
        let r = rois.shape[0]
        let boxes = try rois.doubleValues()
        var batches: [Int]
        if layer.method == .quantizedMax {
            batches = (0..<r).map { roiInt(boxes[$0 * 5]) }
        } else {
            batches = try inputs.tensor(2).intValues()
            guard batches.count == r else {
                throw KilnError.shapeMismatch("RoiAlign has \(r) rois but \(batches.count) batch indices")
            }
        }
        guard batches.allSatisfy({ $0 >= 0 && $0 < x.shape[0] }) else {
            throw KilnError.invalidArgument("roi batch index out of range 0..<\(x.shape[0])")
        }
        let run = RoiRun(layer: layer, x: x, boxes: boxes, batches: batches)
        return try x.dtype.visitReductionFloat(run, op: "roi pooling")
    }

    struct RoiRun: ReductionFloatVisitor {
        let layer: RoiPoolLayer
        let x: Tensor
        let boxes: [Double]
        let batches: [Int]

        func visit<T: ReductionFloat>(_ type: T.Type) throws -> Tensor {
            let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
            let (ph, pw) = (layer.outputHeight, layer.outputWidth)
            let scale = Double(layer.spatialScale)
            return x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: [batches.count, c, ph, pw]) { out in
                    for (roi, batch) in batches.enumerated() {
                        for ch in 0..<c {
                            let plane = (batch * c + ch) * h * w
                            let at = { (y: Int, x: Int) -> Double in Double(src[plane + y * w + x].acc) }
                            for py in 0..<ph {
                                for px in 0..<pw {
                                    let value: Double
                                    switch layer.method {
                                    case .quantizedMax:
                                        value = quantizedMax(roi, py, px, h, w, scale, at)
                                    case .align(let useMax, let ratio, let halfPixel):
                                        value = align(roi, py, px, h, w, scale, useMax, ratio, halfPixel, at)
                                    }
                                    out[((roi * c + ch) * ph + py) * pw + px] = T(acc: T.Acc(value))
                                }
                            }
                        }
                    }
                }
            }
        }

        /// MaxRoiPool: the roi is rounded to the feature grid and split into bins by floor/ceil.
        private func quantizedMax(
            _ roi: Int, _ py: Int, _ px: Int, _ h: Int, _ w: Int, _ scale: Double, _ at: (Int, Int) -> Double
        ) -> Double {
            let b = roi * 5
            let x1 = roiInt((boxes[b + 1] * scale).rounded())
            let y1 = roiInt((boxes[b + 2] * scale).rounded())
            let x2 = roiInt((boxes[b + 3] * scale).rounded())
            let y2 = roiInt((boxes[b + 4] * scale).rounded())
            let binH = Double(max(y2 - y1 + 1, 1)) / Double(layer.outputHeight)
            let binW = Double(max(x2 - x1 + 1, 1)) / Double(layer.outputWidth)
            let hs = min(max(Int((Double(py) * binH).rounded(.down)) + y1, 0), h)
            let he = min(max(Int((Double(py + 1) * binH).rounded(.up)) + y1, 0), h)
            let ws = min(max(Int((Double(px) * binW).rounded(.down)) + x1, 0), w)
            let we = min(max(Int((Double(px + 1) * binW).rounded(.up)) + x1, 0), w)
            guard he > hs, we > ws else { return 0 }
            var best = -Double.infinity
            for y in hs..<he { for x in ws..<we { best = Swift.max(best, at(y, x)) } }
            return best
        }

        /// RoiAlign: the average (or max) of bilinear samples on a regular grid in each bin.
        private func align(
            _ roi: Int, _ py: Int, _ px: Int, _ h: Int, _ w: Int, _ scale: Double, _ useMax: Bool, _ ratio: Int,
            _ halfPixel: Bool, _ at: (Int, Int) -> Double
        ) -> Double {
            let offset = halfPixel ? 0.5 : 0
            let b = roi * 4
            let x1 = boxes[b] * scale - offset
            let y1 = boxes[b + 1] * scale - offset
            var roiW = boxes[b + 2] * scale - offset - x1
            var roiH = boxes[b + 3] * scale - offset - y1
            if !halfPixel {
                roiW = Swift.max(roiW, 1)
                roiH = Swift.max(roiH, 1)
            }
            let binH = roiH / Double(layer.outputHeight)
            let binW = roiW / Double(layer.outputWidth)
            // Adaptive grids are capped so a corrupt roi cannot make a bin take forever.
            func adaptive(_ extent: Double, _ bins: Int) -> Int {
                min(max(roiInt((extent / Double(bins)).rounded(.up)), 0), 1 << 12)
            }
            let gridH = ratio > 0 ? ratio : adaptive(roiH, layer.outputHeight)
            let gridW = ratio > 0 ? ratio : adaptive(roiW, layer.outputWidth)
            let count = Double(Swift.max(gridH * gridW, 1))
            var sum = 0.0
            var best = -Double.infinity
            for iy in 0..<gridH {
                var y = y1 + Double(py) * binH + (Double(iy) + 0.5) * binH / Double(gridH)
                for ix in 0..<gridW {
                    var x = x1 + Double(px) * binW + (Double(ix) + 0.5) * binW / Double(gridW)
                    if !(y >= -1 && y <= Double(h) && x >= -1 && x <= Double(w)) {
                        if useMax { best = Swift.max(best, 0) }
                        continue
                    }
                    y = Swift.max(y, 0)
                    x = Swift.max(x, 0)
                    var yl = Int(y)
                    var xl = Int(x)
                    var yh = yl + 1
                    var xh = xl + 1
                    if yl >= h - 1 {
                        yl = h - 1
                        yh = yl
                        y = Double(yl)
                    }
                    if xl >= w - 1 {
                        xl = w - 1
                        xh = xl
                        x = Double(xl)
                    }
                    let ly = y - Double(yl)
                    let lx = x - Double(xl)
                    let hy = 1 - ly
                    let hx = 1 - lx
                    let v1 = hy * hx * at(yl, xl)
                    let v2 = hy * lx * at(yl, xh)
                    let v3 = ly * hx * at(yh, xl)
                    let v4 = ly * lx * at(yh, xh)
                    if useMax {
                        best = Swift.max(best, v1, v2, v3, v4)
                    } else {
                        sum += v1 + v2 + v3 + v4
                    }
                }
            }
            return useMax ? (best == -Double.infinity ? 0 : best) : sum / count
        }
    }
}
