import Foundation
import KilnIR

/// The random generators. A given seed gives the same values on every run (the generator restarts from it).
/// Without one, ONNX lets the runtime choose; Kiln chooses a fixed seed so that results are reproducible from
/// run to run (a model that wants fresh values each call takes a seed input or varies its inputs).
enum MiscRandom {
    static let defaultSeed: UInt64 = 0x4B49_4C4E_5345_4544

    static func run(_ layer: RandomLayer, _ inputs: [Value?]) throws -> Tensor {
        var generator = SeededGenerator(
            seed: layer.seed.map { UInt64($0.bitPattern) &* 0x2545_F491_4F6C_DD1D } ?? defaultSeed
        )
        let input = try inputs.optionalTensor(0)
        switch layer.distribution {
        case .normal(let mean, let scale):
            let (dtype, shape) = try outputTypeAndShape(layer, input)
            let values = (0..<(try MiscSupport.checkedCount(shape, "random output"))).map { _ -> Double in
                // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
                let u1 = 1 - generator.unit()
                let u2 = generator.unit()
                return Double(mean) + Double(scale) * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            }
            return try MiscSupport.tensor(dtype, shape: shape, values)
        case .uniform(let low, let high):
            let (dtype, shape) = try outputTypeAndShape(layer, input)
            let values = (0..<(try MiscSupport.checkedCount(shape, "random output"))).map { _ in
                Double(low) + (Double(high) - Double(low)) * generator.unit()
            }
            return try MiscSupport.tensor(dtype, shape: shape, values)
        case .bernoulli:
            guard let input else { throw KilnError.invalidArgument("Bernoulli needs its probability input") }
            let probabilities = try MiscSupport.doubles(input)
            let values = probabilities.map { p in generator.unit() < p ? 1.0 : 0.0 }
            return try MiscSupport.tensor(layer.dtype ?? input.dtype, shape: input.shape, values)
        case .multinomial(let samples):
            guard let input, input.rank == 2 else {
                throw KilnError.invalidArgument("Multinomial needs a [batch, classes] input")
            }
            let (batch, classes) = (input.shape[0], input.shape[1])
            guard classes > 0, samples >= 0 else {
                throw KilnError.invalidArgument("Multinomial needs classes and samples")
            }
            let logits = try MiscSupport.doubles(input)
            var values: [Double] = []
            values.reserveCapacity(try MiscSupport.checkedCount([batch, samples], "Multinomial output"))
            var cumulative = [Double](repeating: 0, count: classes)
            for b in 0..<batch {
                let row = logits[(b * classes)..<((b + 1) * classes)]
                let top = row.max() ?? 0
                var total = 0.0
                for (c, v) in row.enumerated() {
                    total += exp(v - top)
                    cumulative[c] = total
                }
                for _ in 0..<samples {
                    let target = generator.unit() * total
                    let index = cumulative.firstIndex { $0 > target } ?? classes - 1
                    values.append(Double(index))
                }
            }
            return try MiscSupport.tensor(layer.dtype ?? .int32, shape: [batch, samples], values)
        }
    }

    private static func outputTypeAndShape(_ layer: RandomLayer, _ input: Tensor?) throws -> (DType, [Int]) {
        if let shape = layer.shape, let dtype = layer.dtype { return (dtype, shape) }
        guard let input else { throw KilnError.invalidArgument("random generator needs a shape or an input") }
        return (layer.dtype ?? input.dtype, layer.shape ?? input.shape)
    }
}
