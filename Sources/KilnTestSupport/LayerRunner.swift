import KilnCPU
import KilnIR
import KilnRuntime

/// Runs small graphs on the CPU backend, for kernel tests.
public enum LayerRunner {
    /// Builds a one-node graph around `layer` with the given inputs (nil = omitted optional input) and runs it
    /// without optimization, returning every output.
    public static func run(
        _ layer: any Layer, inputs: [Value?], outputCount: Int = 1, threads: Int = 2
    ) throws -> [Value] {
        var graphInputs: [GraphValue] = []
        var names: [String] = []
        var feeds: [String: Value] = [:]
        for (i, value) in inputs.enumerated() {
            guard let value else {
                names.append("")
                continue
            }
            let name = "in\(i)"
            names.append(name)
            graphInputs.append(GraphValue(name: name, type: value.type))
            feeds[name] = value
        }
        let outputs = (0..<outputCount).map { "out\($0)" }
        let graph = Graph(
            name: "test", inputs: graphInputs, outputs: outputs.map { GraphValue(name: $0, type: nil) },
            nodes: [Node(name: "node", layer: layer, inputs: names, outputs: outputs)])
        let engine = try Builder.build(
            graph, device: CPUDevice(threads: threads, options: .untuned), config: BuilderConfig(optimize: false))
        let results = try engine.makeContext().run(feeds)
        return try outputs.map { name in
            guard let v = results[name] else { throw KilnError.runtime("missing output \(name)") }
            return v
        }
    }

    /// `run` for the common case of tensor inputs and one tensor output.
    public static func run(_ layer: any Layer, _ inputs: Tensor...) throws -> Tensor {
        try run(layer, inputs: inputs.map { .tensor($0) })[0].asTensor()
    }
}
