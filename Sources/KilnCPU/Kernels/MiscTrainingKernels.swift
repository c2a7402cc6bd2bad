import Foundation
import KilnIR

/// One optimizer step (Adagrad, Adam, Momentum) per parameter tensor, computed in Double.
enum MiscTraining {
    static func run(_ layer: OptimizerStepLayer, _ inputs: [Value?]) throws -> [Value] {
        let perParameter = 2 + layer.algorithm.statesPerParameter
        guard inputs.count >= 2 + perParameter, (inputs.count - 2) % perParameter == 0 else {
            throw KilnError.invalidArgument("optimizer step got \(inputs.count) inputs")
        }
        let n = layer.parameterCount(inputs: inputs.count)
        let rate = try MiscSupport.scalar(try inputs.tensor(0), "learning rate R")
        let step = Double(try MiscSupport.scalarInt(try inputs.tensor(1), "step count T"))
        var newX: [Value] = []
        var newStates: [[Value]] = Array(repeating: [], count: layer.algorithm.statesPerParameter)
        for p in 0..<n {
            let xT = try inputs.tensor(2 + p)
            let gT = try inputs.tensor(2 + n + p)
            let stateTensors = try (0..<layer.algorithm.statesPerParameter).map {
                try inputs.tensor(2 + (2 + $0) * n + p)
            }
            for t in [gT] + stateTensors where t.shape != xT.shape {
                throw KilnError.shapeMismatch(
                    "optimizer tensors for parameter \(p) differ in shape: \(t.shape) vs \(xT.shape)")
            }
            var x = try MiscSupport.doubles(xT)
            let g = try MiscSupport.doubles(gT)
            var states = try stateTensors.map(MiscSupport.doubles)
            for i in x.indices {
                switch layer.algorithm {
                case .adagrad(let decay, let epsilon, let norm):
                    let r = rate / (1 + step * Double(decay))
                    let gr = Double(norm) * x[i] + g[i]
                    states[0][i] += gr * gr
                    x[i] -= r * gr / (states[0][i].squareRoot() + Double(epsilon))
                case .adam(let alpha, let beta, let epsilon, let norm, let post):
                    let (a, b) = (Double(alpha), Double(beta))
                    let gr = Double(norm) * x[i] + g[i]
                    states[0][i] = a * states[0][i] + (1 - a) * gr
                    states[1][i] = b * states[1][i] + (1 - b) * gr * gr
                    // Bias correction applies from the first counted step on.
                    let r = step > 0 ? rate * (1 - pow(b, step)).squareRoot() / (1 - pow(a, step)) : rate
                    let updated = x[i] - r * states[0][i] / (states[1][i].squareRoot() + Double(epsilon))
                    x[i] = (1 - Double(post)) * updated
                case .momentum(let alpha, let beta, let norm, let nesterov):
                    let gr = Double(norm) * x[i] + g[i]
                    let b = step > 0 ? Double(beta) : 1
                    states[0][i] = Double(alpha) * states[0][i] + b * gr
                    x[i] -= nesterov ? rate * (gr + Double(alpha) * states[0][i]) : rate * states[0][i]
                }
            }
            newX.append(.tensor(try MiscSupport.tensor(xT.dtype, shape: xT.shape, x)))
            for (s, t) in stateTensors.enumerated() {
                newStates[s].append(.tensor(try MiscSupport.tensor(t.dtype, shape: t.shape, states[s])))
            }
        }
        return newX + newStates.flatMap { $0 }
    }
}
