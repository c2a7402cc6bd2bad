import KilnIR

/// Scaler, Normalizer, Imputer, LinearRegressor, LinearClassifier, OneHotEncoder and CategoryMapper.
enum MLLinearImporters {
    static let domain = MLImporters.domain

    static let table: [OperatorImporter] = [
        .layer("Scaler", domain: domain) { c in
            MLScalerLayer(offset: try c.floats("offset", default: []), scale: try c.floats("scale", default: []))
        },
        .layer("Normalizer", domain: domain) { c in
            let text = try c.string("norm", default: "MAX")
            guard let norm = MLNormalizerLayer.Norm(rawValue: text) else {
                throw c.invalid("norm '\(text)' is not defined")
            }
            return MLNormalizerLayer(norm: norm)
        },
        .layer("Imputer", domain: domain) { c in
            let floats = try c.floats("imputed_value_floats", default: [])
            if !floats.isEmpty {
                return MLImputerLayer(
                    values: floats.map(Double.init),
                    replaced: Double(try c.float("replaced_value_float", default: .nan)))
            }
            let ints = try c.ints("imputed_value_int64s", default: [])
            guard !ints.isEmpty else { throw c.invalid("Imputer needs imputed_value_floats or imputed_value_int64s") }
            return MLImputerLayer(
                values: ints.map(Double.init), replaced: Double(try c.int("replaced_value_int64", default: 0)))
        },
        .layer("LinearRegressor", domain: domain) { c in
            let post = try postTransform(c)
            guard post == .none else { throw c.unsupported("LinearRegressor post_transform other than NONE") }
            return LinearModelLayer(
                coefficients: try c.floats("coefficients"), intercepts: try c.floats("intercepts", default: []),
                classes: try c.int("targets", default: 1), postTransform: post, classLabels: nil)
        },
        .layer("LinearClassifier", domain: domain) { c in
            let labels: TreeEnsembleLayer.ClassLabels =
                c.has("classlabels_strings")
                ? .strings(try c.strings("classlabels_strings"))
                : .int64s(try c.ints("classlabels_ints").map { Int64($0) })
            return LinearModelLayer(
                coefficients: try c.floats("coefficients"), intercepts: try c.floats("intercepts", default: []),
                classes: labels.count,
                postTransform: try postTransform(c), classLabels: labels)
        },
        .layer("OneHotEncoder", domain: domain) { c in
            let ints = try c.ints("cats_int64s", default: [])
            let categories =
                ints.isEmpty
                ? Tensor(
                    shape: [try c.strings("cats_strings", default: []).count],
                    strings: try c.strings("cats_strings", default: []))
                : Tensor(shape: [ints.count], scalars: ints.map { Int64($0) })
            guard categories.count > 0 else { throw c.invalid("OneHotEncoder needs cats_int64s or cats_strings") }
            return MLOneHotEncoderLayer(categories: categories, zeros: try c.int("zeros", default: 1) != 0)
        },
        // CategoryMapper is a LabelEncoder between cats_strings and cats_int64s, direction by input type.
        .layer("CategoryMapper", domain: domain) { c in
            let strings = try c.strings("cats_strings")
            let ints = try c.ints("cats_int64s").map { Int64($0) }
            guard strings.count == ints.count else { throw c.invalid("CategoryMapper category lists differ in length") }
            let names = Tensor(shape: [strings.count], strings: strings)
            let numbers = Tensor(shape: [ints.count], scalars: ints)
            if c.inputType(0)?.tensorType?.dtype == .string {
                return LabelEncoderLayer(
                    keys: names, values: numbers,
                    defaultValue: Tensor(scalar: Int64(try c.int("default_int64", default: -1))))
            }
            return LabelEncoderLayer(
                keys: numbers, values: names,
                defaultValue: Tensor(shape: [], strings: [try c.string("default_string", default: "_Unused")]))
        },
    ]

    static let more: [OperatorImporter] = [
        .layer("FeatureVectorizer", domain: domain) { c in
            MLFeatureVectorizerLayer(inputDimensions: try c.ints("inputdimensions"))
        },
        .layer("SVMRegressor", domain: domain) { c in
            let text = try c.string("kernel_type", default: "LINEAR")
            guard let kernel = SVMRegressorLayer.Kernel(rawValue: text) else {
                throw c.invalid("kernel_type '\(text)' is not defined")
            }
            let params = try c.floats("kernel_params", default: [])
            guard try postTransform(c) == .none else {
                throw c.unsupported("SVMRegressor post_transform other than NONE")
            }
            return SVMRegressorLayer(
                kernel: kernel, gamma: params.count > 0 ? Double(params[0]) : 0,
                coef0: params.count > 1 ? Double(params[1]) : 0, degree: params.count > 2 ? Int(params[2]) : 0,
                supportVectors: try c.floats("support_vectors", default: []),
                supports: try c.int("n_supports", default: 0),
                coefficients: try c.floats("coefficients"), rho: try c.floats("rho", default: [0]).first ?? 0,
                oneClass: try c.int("one_class", default: 0) != 0)
        },
    ]

    static func postTransform(_ c: ImportContext) throws -> TreeEnsembleLayer.PostTransform {
        let text = try c.string("post_transform", default: "NONE")
        let posts: [String: TreeEnsembleLayer.PostTransform] = [
            "NONE": .none, "SOFTMAX": .softmax, "LOGISTIC": .logistic, "SOFTMAX_ZERO": .softmaxZero, "PROBIT": .probit,
        ]
        guard let post = posts[text] else { throw c.invalid("post_transform '\(text)' is not defined") }
        return post
    }
}
