import KilnIR

/// Operators outside the other families: NonMaxSuppression, Swish, the classification losses, random
/// generators, the training optimizers (ai.onnx.preview.training), plus the ai.onnx.ml table.
enum MiscImporters {
    static let table: [OperatorImporter] =
        [
            .layer("NonMaxSuppression", since: 10) { c in
                NonMaxSuppressionLayer(centerPointBox: try c.int("center_point_box", default: 0) != 0)
            },
            .layer("Swish", since: 24) { c in SwishLayer(alpha: try c.float("alpha", default: 1)) },
            .layer("NegativeLogLikelihoodLoss", since: 12) { c in try loss(c, softmax: false) },
            .layer("SoftmaxCrossEntropyLoss", since: 12) { c in try loss(c, softmax: true) },
            OperatorImporter("Gradient", domain: "ai.onnx.preview.training") { c in
                // Gradient needs symbolic differentiation of the graph it names; Kiln is an inference engine.
                throw c.unsupported("Gradient (training-time automatic differentiation) is not supported by Kiln")
            },
            .layer("ImageDecoder", since: 20) { c in
                let format = try c.string("pixel_format", default: "RGB")
                guard let parsed = ImageDecoderLayer.PixelFormat(rawValue: format) else {
                    throw c.invalid("pixel_format must be RGB, BGR or Grayscale, is '\(format)'")
                }
                return ImageDecoderLayer(pixelFormat: parsed)
            },
        ] + MiscImporters.training + MiscImporters.random + MLImporters.table

    private static func loss(_ c: ImportContext, softmax: Bool) throws -> ClassificationLossLayer {
        let text = try c.string("reduction", default: "mean")
        guard let reduction = LossReduction(rawValue: text) else {
            throw c.invalid("reduction must be none, sum or mean, is '\(text)'")
        }
        return ClassificationLossLayer(
            softmax: softmax, reduction: reduction, ignoreIndex: try c.optionalInt("ignore_index").map { Int64($0) })
    }

    static let training: [OperatorImporter] = [
        .layer("Adagrad", domain: "ai.onnx.preview.training") { c in
            OptimizerStepLayer(
                algorithm: .adagrad(
                    decayFactor: try c.float("decay_factor", default: 0), epsilon: try c.float("epsilon", default: 0),
                    normCoefficient: try c.float("norm_coefficient", default: 0)))
        },
        .layer("Adam", domain: "ai.onnx.preview.training") { c in
            OptimizerStepLayer(
                algorithm: .adam(
                    alpha: try c.float("alpha", default: 0.9), beta: try c.float("beta", default: 0.999),
                    epsilon: try c.float("epsilon", default: 1e-6),
                    normCoefficient: try c.float("norm_coefficient", default: 0),
                    normCoefficientPost: try c.float("norm_coefficient_post", default: 0)))
        },
        .layer("Momentum", domain: "ai.onnx.preview.training") { c in
            let mode = try c.string("mode")
            guard mode == "standard" || mode == "nesterov" else {
                throw c.invalid("Momentum mode must be standard or nesterov, is '\(mode)'")
            }
            return OptimizerStepLayer(
                algorithm: .momentum(
                    alpha: try c.float("alpha"), beta: try c.float("beta"),
                    normCoefficient: try c.float("norm_coefficient"), nesterov: mode == "nesterov"))
        },
    ]

    static let random: [OperatorImporter] = [
        .layer("RandomNormal") { c in
            RandomLayer(
                distribution: .normal(mean: try c.float("mean", default: 0), scale: try c.float("scale", default: 1)),
                dtype: try dtype(c, default: .float32), shape: try c.ints("shape"), seed: try seed(c))
        },
        .layer("RandomUniform") { c in
            RandomLayer(
                distribution: .uniform(low: try c.float("low", default: 0), high: try c.float("high", default: 1)),
                dtype: try dtype(c, default: .float32), shape: try c.ints("shape"), seed: try seed(c))
        },
        .layer("RandomNormalLike") { c in
            RandomLayer(
                distribution: .normal(mean: try c.float("mean", default: 0), scale: try c.float("scale", default: 1)),
                dtype: try dtype(c, default: nil), shape: nil, seed: try seed(c))
        },
        .layer("RandomUniformLike") { c in
            RandomLayer(
                distribution: .uniform(low: try c.float("low", default: 0), high: try c.float("high", default: 1)),
                dtype: try dtype(c, default: nil), shape: nil, seed: try seed(c))
        },
        .layer("Bernoulli", since: 15) { c in
            RandomLayer(distribution: .bernoulli, dtype: try dtype(c, default: nil), shape: nil, seed: try seed(c))
        },
        .layer("Multinomial", since: 7) { c in
            let samples = try c.int("sample_size", default: 1)
            guard samples >= 0 else { throw c.invalid("sample_size must not be negative") }
            return RandomLayer(
                distribution: .multinomial(samples: samples), dtype: try dtype(c, default: .int32), shape: nil,
                seed: try seed(c))
        },
    ]

    private static func seed(_ c: ImportContext) throws -> Float? { c.has("seed") ? try c.float("seed") : nil }

    private static func dtype(_ c: ImportContext, default value: DType?) throws -> DType? {
        guard c.has("dtype") else { return value }
        let code = try c.int("dtype")
        guard let dtype = DType(rawValue: code), dtype.scalarType != nil else {
            throw c.unsupported("dtype \(code) is not supported for \(c.node.opType)")
        }
        return dtype
    }
}
