import Foundation
import KilnIR
import KilnRuntime

/// Kernels for the operators outside the other families: NonMaxSuppression, Swish, the classification losses,
/// training optimizer steps and random generators, plus the ai.onnx.ml family (registered here because the
/// registry has one table per family file and ML belongs to this engineer's family).
enum MiscKernels {
    static let table: [(LayerKind, CPUKernelFactory)] =
        [
            cpuKernel(NonMaxSuppressionLayer.self) { layer, inputs, _ in [.tensor(try nonMaxSuppression(layer, inputs))]
            },
            cpuKernel(SwishLayer.self) { layer, inputs, context in
                let x = try inputs.tensor(0)
                guard x.dtype.isFloatingPoint else {
                    throw KilnError.typeMismatch("Swish needs a floating-point input")
                }
                return [
                    .tensor(try x.dtype.visit(SwishVisitor(x: x, alpha: Double(layer.alpha), threads: context.threads)))
                ]
            },
            cpuKernel(ClassificationLossLayer.self) { layer, inputs, _ in try MiscLoss.run(layer, inputs) },
            cpuKernel(OptimizerStepLayer.self) { layer, inputs, _ in try MiscTraining.run(layer, inputs) },
            cpuKernel(RandomLayer.self) { layer, inputs, _ in [.tensor(try MiscRandom.run(layer, inputs))] },
            cpuKernel(ImageDecoderLayer.self) { layer, inputs, _ in
                [.tensor(try MiscImageDecoder.run(layer, try inputs.tensor(0)))]
            },
        ] + MLKernels.table

    private struct SwishVisitor: ScalarVisitor {
        let x: Tensor
        let alpha: Double
        let threads: Int
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            x.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: x.shape) { dst in
                    let out = UncheckedSendable(dst)
                    Parallel.forEach(src.count, threads: threads, minimumChunk: 16384) { range in
                        for i in range {
                            let v = src[i].doubleValue
                            out.value[i] = T(castingFrom: v / (1 + exp(-alpha * v)))
                        }
                    }
                }
            }
        }
    }

    static func nonMaxSuppression(_ layer: NonMaxSuppressionLayer, _ inputs: [Value?]) throws -> Tensor {
        let boxesTensor = try inputs.tensor(0)
        let scoresTensor = try inputs.tensor(1)
        guard boxesTensor.rank == 3, boxesTensor.shape[2] == 4 else {
            throw KilnError.shapeMismatch("NonMaxSuppression boxes must be [batch, boxes, 4], are \(boxesTensor.shape)")
        }
        let (batches, count) = (boxesTensor.shape[0], boxesTensor.shape[1])
        guard scoresTensor.rank == 3, scoresTensor.shape[0] == batches, scoresTensor.shape[2] == count else {
            throw KilnError.shapeMismatch(
                "NonMaxSuppression scores must be [\(batches), classes, \(count)], are \(scoresTensor.shape)")
        }
        let classes = scoresTensor.shape[1]
        var maxPerClass = 0
        if let t = try inputs.optionalTensor(2), t.count > 0 { maxPerClass = Int(max(0, try t.int64Values()[0])) }
        var iouThreshold = 0.0
        if let t = try inputs.optionalTensor(3), t.count > 0 { iouThreshold = try MiscSupport.doubles(t)[0] }
        var scoreThreshold: Double? = nil
        if let t = try inputs.optionalTensor(4), t.count > 0 { scoreThreshold = try MiscSupport.doubles(t)[0] }
        let boxes = try MiscSupport.doubles(boxesTensor)
        let scores = try MiscSupport.doubles(scoresTensor)
        // Each box as (xmin, ymin, xmax, ymax) with min <= max, whatever the corner order in the input.
        var corners = [Double](repeating: 0, count: boxes.count)
        for b in 0..<(batches * count) {
            let p = b * 4
            if layer.centerPointBox {
                let (cx, cy, w, h) = (boxes[p], boxes[p + 1], boxes[p + 2] / 2, boxes[p + 3] / 2)
                corners[p] = cx - w
                corners[p + 1] = cy - h
                corners[p + 2] = cx + w
                corners[p + 3] = cy + h
            } else {
                corners[p] = min(boxes[p + 1], boxes[p + 3])
                corners[p + 1] = min(boxes[p], boxes[p + 2])
                corners[p + 2] = max(boxes[p + 1], boxes[p + 3])
                corners[p + 3] = max(boxes[p], boxes[p + 2])
            }
        }
        func overlaps(_ a: Int, _ b: Int) -> Bool {
            let (pa, pb) = (a * 4, b * 4)
            let ix = min(corners[pa + 2], corners[pb + 2]) - max(corners[pa], corners[pb])
            let iy = min(corners[pa + 3], corners[pb + 3]) - max(corners[pa + 1], corners[pb + 1])
            guard ix > 0, iy > 0 else { return false }
            let inter = ix * iy
            let areaA = (corners[pa + 2] - corners[pa]) * (corners[pa + 3] - corners[pa + 1])
            let areaB = (corners[pb + 2] - corners[pb]) * (corners[pb + 3] - corners[pb + 1])
            let union = areaA + areaB - inter
            guard areaA > 0, areaB > 0, union > 0 else { return false }
            return inter / union > iouThreshold
        }
        var selected: [Int64] = []
        guard maxPerClass > 0 else { return Tensor(shape: [0, 3], scalars: selected) }
        for b in 0..<batches {
            for c in 0..<classes {
                let base = (b * classes + c) * count
                var candidates = (0..<count).filter { i in scoreThreshold.map { scores[base + i] > $0 } ?? true }
                // Highest score first; equal scores keep the lower box index first.
                candidates.sort {
                    scores[base + $0] > scores[base + $1] || (scores[base + $0] == scores[base + $1] && $0 < $1)
                }
                var kept: [Int] = []
                for i in candidates {
                    if kept.count >= maxPerClass { break }
                    if kept.contains(where: { overlaps(b * count + $0, b * count + i) }) { continue }
                    kept.append(i)
                    selected.append(contentsOf: [Int64(b), Int64(c), Int64(i)])
                }
            }
        }
        return Tensor(shape: [selected.count / 3, 3], scalars: selected)
    }
}
