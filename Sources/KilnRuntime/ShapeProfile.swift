import KilnIR

/// The shapes an engine accepts for its dynamic inputs: for each, the smallest, the one to tune for, and the
/// largest (TensorRT's optimization profile). An engine with profiles refuses a shape outside all of them.
public struct ShapeProfile: Sendable, Hashable, CustomStringConvertible {
    public struct Range: Sendable, Hashable, CustomStringConvertible {
        public var name: String
        public var min: [Int]
        public var opt: [Int]
        public var max: [Int]

        public init(name: String, min: [Int], opt: [Int], max: [Int]) {
            self.name = name
            self.min = min
            self.opt = opt
            self.max = max
        }

        func contains(_ shape: [Int]) -> Bool {
            shape.count == min.count && zip(shape, zip(min, max)).allSatisfy { $0 >= $1.0 && $0 <= $1.1 }
        }

        public var description: String {
            "\(name)=" + [min, opt, max].map { $0.map(String.init).joined(separator: "x") }.joined(separator: ":")
        }
    }

    public var inputs: [Range]

    public init(inputs: [Range]) { self.inputs = inputs }

    public var description: String { inputs.map(\.description).joined(separator: ",") }

    /// Whether every input the profile names has a shape inside its range.
    public func contains(_ shapes: [String: [Int]]) -> Bool {
        inputs.allSatisfy { range in shapes[range.name].map(range.contains) ?? false }
    }

    /// Checks the profile against the graph's inputs: known names, matching ranks and static dimensions,
    /// min <= opt <= max on every axis.
    public func check(against graphInputs: [GraphValue]) throws {
        for range in inputs {
            guard let input = graphInputs.first(where: { $0.name == range.name }) else {
                throw KilnError.invalidArgument(
                    "profile \(self): the model has no input '\(range.name)' "
                        + "(inputs: \(graphInputs.map(\.name).joined(separator: ", ")))")
            }
            let declared = input.type?.tensorType?.shape
            for dims in [range.min, range.opt, range.max] {
                _ = try ShapeAxes.checkedCount(dims)
                guard dims.count == range.min.count, declared.map({ $0.count == dims.count }) ?? true else {
                    throw KilnError.invalidArgument("profile \(range): the ranks differ from the input's \(input)")
                }
                for (axis, dim) in (declared ?? []).enumerated() {
                    if let fixed = dim.value, dims[axis] != fixed {
                        throw KilnError.invalidArgument(
                            "profile \(range): axis \(axis) of '\(range.name)' is fixed at \(fixed)")
                    }
                }
            }
            for axis in range.min.indices
            where !(range.min[axis] <= range.opt[axis] && range.opt[axis] <= range.max[axis] && range.min[axis] >= 0) {
                throw KilnError.invalidArgument("profile \(range): axis \(axis) needs 0 <= min <= opt <= max")
            }
        }
    }

    /// The input shape sets a build compiles for this profile (opt first: tactics are timed there), with the
    /// inputs the profile does not name at their static shapes.
    public func compiledShapeSets(graphInputs: [GraphValue]) -> [[BuildOptions.InputShape]] {
        let picks: [(Range) -> [Int]] = [{ $0.opt }, { $0.min }, { $0.max }]
        var sets: [[BuildOptions.InputShape]] = []
        for pick in picks {
            let set = graphInputs.compactMap { input -> BuildOptions.InputShape? in
                if let range = inputs.first(where: { $0.name == input.name }) {
                    return .init(name: input.name, dims: pick(range))
                }
                return input.type?.tensorType?.concreteShape.map { .init(name: input.name, dims: $0) }
            }
            if !sets.contains(set) { sets.append(set) }
        }
        return sets
    }
}
