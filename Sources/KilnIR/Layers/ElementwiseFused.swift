/// A chain (or tree) of pointwise layers fused by the optimizer into one layer: every step reads graph inputs
/// of the fused layer or earlier steps' results, and the last step's result is the output. Every step's result
/// has the output's shape, so a backend can compute all steps per element in one pass (one generated kernel on
/// the GPU) with no intermediate tensor in memory.
public struct FusedPointwiseLayer: Layer {
    public static let kind = LayerKind("pointwise.fused")

    public enum Operand: Sendable, Hashable, Codable {
        /// Input `i` of the fused layer.
        case input(Int)
        /// The result of step `i` (an earlier step).
        case step(Int)
    }

    public struct Step: Sendable, Codable {
        public var layer: any Layer
        public var operands: [Operand]

        public init(layer: any Layer, operands: [Operand]) {
            self.layer = layer
            self.operands = operands
        }
    }

    public var steps: [Step]

    public init(steps: [Step]) { self.steps = steps }

    public func inferTypes(_ inputs: [LayerInput]) throws -> [ValueType?] {
        var results: [LayerInput] = []
        for (index, step) in steps.enumerated() {
            let operands = try step.operands.map { operand -> LayerInput in
                switch operand {
                case .input(let i):
                    guard inputs.indices.contains(i) else {
                        throw KilnError.invalidArgument("fused step \(index) reads input \(i) of \(inputs.count)")
                    }
                    return inputs[i]
                case .step(let s):
                    guard results.indices.contains(s) else {
                        throw KilnError.invalidArgument("fused step \(index) reads step \(s), not computed yet")
                    }
                    return results[s]
                }
            }
            let types = try step.layer.inferTypes(operands)
            results.append(LayerInput(type: types.first ?? nil))
        }
        return [results.last?.type]
    }

    /// `mul(in0,in1); erf(s0); ...`
    public var description: String {
        steps.map { step in
            let args = step.operands.map { operand in
                switch operand {
                case .input(let i): "in\(i)"
                case .step(let s): "s\(s)"
                }
            }
            let text = step.layer.description
            let op = text.isEmpty ? step.layer.kind.name : text.hasPrefix("op=") ? String(text.dropFirst(3)) : text
            return "\(op)(\(args.joined(separator: ",")))"
        }.joined(separator: "; ")
    }
}
