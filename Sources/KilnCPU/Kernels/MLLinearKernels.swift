import Foundation
import KilnIR
import KilnRuntime

/// Scaler, Normalizer, Imputer, the linear models and OneHotEncoder of ai.onnx.ml, computed in Double.
enum MLLinearKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(MLScalerLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let width = max(x.shape.last ?? 1, 1)
            let v = try MiscSupport.doubles(x)
            func pick(_ a: [Float], _ i: Int, _ fallback: Double) throws -> Double {
                if a.isEmpty { return fallback }
                if a.count == 1 { return Double(a[0]) }
                guard a.count == width else {
                    throw KilnError.invalidArgument("Scaler has \(a.count) values for \(width) features")
                }
                return Double(a[i % width])
            }
            let out = try v.indices.map { i in (v[i] - (try pick(layer.offset, i, 0))) * (try pick(layer.scale, i, 1)) }
            return [.tensor(try MiscSupport.tensor(.float32, shape: x.shape, out))]
        },
        cpuKernel(MLNormalizerLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let width = max(x.shape.last ?? 1, 1)
            var v = try MiscSupport.doubles(x)
            for start in stride(from: 0, to: v.count, by: width) {
                let row = start..<(start + width)
                let norm: Double
                switch layer.norm {
                case .max: norm = v[row].max() ?? 0
                case .l1: norm = v[row].reduce(0) { $0 + abs($1) }
                case .l2: norm = v[row].reduce(0) { $0 + $1 * $1 }.squareRoot()
                }
                if norm != 0 { for i in row { v[i] /= norm } }
            }
            return [.tensor(try MiscSupport.tensor(.float32, shape: x.shape, v))]
        },
        cpuKernel(MLImputerLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let width = max(x.shape.last ?? 1, 1)
            guard layer.values.count == 1 || layer.values.count == width else {
                throw KilnError.invalidArgument("Imputer has \(layer.values.count) values for \(width) features")
            }
            var v = try MiscSupport.doubles(x)
            for i in v.indices where layer.replaced.isNaN ? v[i].isNaN : v[i] == layer.replaced {
                v[i] = layer.values[layer.values.count == 1 ? 0 : i % width]
            }
            return [.tensor(try MiscSupport.tensor(x.dtype, shape: x.shape, v))]
        },
        cpuKernel(LinearModelLayer.self) { layer, inputs, _ in try linear(layer, try inputs.tensor(0)) },
        cpuKernel(MLFeatureVectorizerLayer.self) { layer, inputs, _ in [.tensor(try featureVectorizer(layer, inputs))]
        },
        cpuKernel(SVMRegressorLayer.self) { layer, inputs, _ in [.tensor(try svmRegressor(layer, try inputs.tensor(0)))]
        },
        cpuKernel(MLOneHotEncoderLayer.self) { layer, inputs, _ in
            let x = try inputs.tensor(0)
            let categories = try MLKernels.keys(layer.categories)
            var index: [MLKernels.Key: Int] = [:]
            for (i, k) in categories.enumerated() where index[k] == nil { index[k] = i }
            let k = categories.count
            var out = [Double](repeating: 0, count: x.count * k)
            for (i, key) in try MLKernels.keys(x).enumerated() {
                if let j = index[key] {
                    out[i * k + j] = 1
                } else if !layer.zeros {
                    throw KilnError.invalidArgument("OneHotEncoder input \(i) is not a known category")
                }
            }
            return [.tensor(try MiscSupport.tensor(.float32, shape: x.shape + [k], out))]
        },
    ]

    static func featureVectorizer(_ layer: MLFeatureVectorizerLayer, _ inputs: [Value?]) throws -> Tensor {
        guard inputs.count == layer.inputDimensions.count else {
            throw KilnError.invalidArgument(
                "FeatureVectorizer has \(inputs.count) inputs, \(layer.inputDimensions.count) dimensions")
        }
        let tensors = try inputs.indices.map { try inputs.tensor($0) }
        guard let rows = tensors.first.map({ $0.rank == 0 ? 1 : $0.shape[0] }) else {
            throw KilnError.invalidArgument("FeatureVectorizer needs inputs")
        }
        let width = layer.inputDimensions.reduce(0, +)
        var out = [Double](
            repeating: 0, count: try MiscSupport.checkedCount([rows, width], "FeatureVectorizer output"))
        var column = 0
        for (t, cut) in zip(tensors, layer.inputDimensions) {
            guard t.rank <= 2, (t.rank == 0 ? 1 : t.shape[0]) == rows, cut >= 0 else {
                throw KilnError.shapeMismatch(
                    "FeatureVectorizer inputs must be [\(rows), d] or [\(rows)], got \(t.shape)")
            }
            let d = t.rank == 2 ? t.shape[1] : 1
            let v = try MiscSupport.doubles(t)
            for r in 0..<rows {
                for c in 0..<min(d, cut) { out[r * width + column + c] = v[r * d + c] }
            }
            column += cut
        }
        return try MiscSupport.tensor(.float32, shape: [rows, width], out)
    }

    static func svmRegressor(_ layer: SVMRegressorLayer, _ x: Tensor) throws -> Tensor {
        let rows = x.rank == 2 ? x.shape[0] : 1
        let features = max(x.shape.last ?? 1, 1)
        let linearOnly = layer.supports == 0
        guard x.rank <= 2,
            linearOnly
                ? layer.coefficients.count == features
                : layer.supportVectors.count == layer.supports * features && layer.coefficients.count >= layer.supports
        else { throw KilnError.shapeMismatch("SVMRegressor weights do not match \(features) features") }
        let v = try MiscSupport.doubles(x)
        func kernel(_ row: Int, _ vector: [Float], _ offset: Int) -> Double {
            var dot = 0.0
            var distance = 0.0
            for f in 0..<features {
                let a = v[row * features + f]
                let b = Double(vector[offset + f])
                dot += a * b
                distance += (a - b) * (a - b)
            }
            switch linearOnly ? .linear : layer.kernel {
            case .linear: return dot
            case .poly: return pow(dot * layer.gamma + layer.coef0, Double(layer.degree))
            case .sigmoid: return tanh(dot * layer.gamma + layer.coef0)
            case .rbf: return exp(-layer.gamma * distance)
            }
        }
        let out = (0..<rows).map { r -> Double in
            var s = Double(layer.rho)
            if linearOnly {
                s += kernel(r, layer.coefficients, 0)
            } else {
                for j in 0..<layer.supports {
                    s += Double(layer.coefficients[j]) * kernel(r, layer.supportVectors, j * features)
                }
            }
            return layer.oneClass ? (s > 0 ? 1 : -1) : s
        }
        return try MiscSupport.tensor(.float32, shape: [rows, 1], out)
    }

    static func linear(_ layer: LinearModelLayer, _ x: Tensor) throws -> [Value] {
        let rows = x.rank == 2 ? x.shape[0] : 1
        let features = max(x.shape.last ?? 1, 1)
        // Classifiers have one coefficient row per scored class, as many as the coefficients hold.
        let classes = layer.classLabels == nil ? layer.classes : layer.coefficients.count / features
        guard x.rank <= 2, classes > 0, layer.coefficients.count == classes * features else {
            throw KilnError.shapeMismatch(
                "linear model has \(layer.coefficients.count) coefficients for \(features) features")
        }
        guard layer.intercepts.isEmpty || layer.intercepts.count == classes else {
            throw KilnError.invalidModel("linear model has \(layer.intercepts.count) intercepts for \(classes) outputs")
        }
        let v = try MiscSupport.doubles(x)
        let columns = layer.classLabels?.count == 2 && classes == 1 ? 2 : classes
        var scores = [Double](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for c in 0..<classes {
                var s = layer.intercepts.isEmpty ? 0 : Double(layer.intercepts[c])
                for f in 0..<features { s += v[r * features + f] * Double(layer.coefficients[c * features + f]) }
                scores[r * columns + c] = s
            }
            if columns == 2 && classes == 1 {
                scores[r * 2 + 1] = scores[r * 2]
                scores[r * 2] = -scores[r * 2]
            }
            MLTrees.transform(&scores, row: r, width: columns, layer.postTransform)
        }
        let scoreTensor = try MiscSupport.tensor(.float32, shape: [rows, columns], scores)
        guard let labels = layer.classLabels else { return [.tensor(scoreTensor)] }
        var picks = [Int](repeating: 0, count: rows)
        if columns == 1 {
            // One score column: the first label when the score passes the threshold, else the "none" label.
            let threshold = layer.postTransform == .none ? 0.0 : 0.5
            for r in 0..<rows { picks[r] = scores[r] >= threshold ? 0 : -1 }
        } else {
            for r in 0..<rows {
                for c in 1..<columns where scores[r * columns + c] > scores[r * columns + picks[r]] { picks[r] = c }
            }
        }
        let labelTensor: Tensor
        switch labels {
        case .int64s(let names):
            labelTensor = Tensor(
                shape: [rows],
                scalars: try picks.map { i -> Int64 in
                    if i < 0 { return 0 }
                    guard i < names.count else { throw KilnError.invalidModel("linear classifier has too few labels") }
                    return names[i]
                })
        case .strings(let names):
            labelTensor = Tensor(
                shape: [rows],
                strings: try picks.map { i -> String in
                    if i < 0 { return "" }
                    guard i < names.count else { throw KilnError.invalidModel("linear classifier has too few labels") }
                    return names[i]
                })
        }
        return [.tensor(labelTensor), .tensor(scoreTensor)]
    }
}
