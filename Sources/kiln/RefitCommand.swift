import ArgumentParser
import Foundation
import KilnCPU
import KilnIR
import KilnONNX
import KilnRuntime

struct RefitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refit",
        abstract: "Give a plan the weights of another model of the same network, without compiling or timing again.",
        discussion: """
            The model is optimized with the plan's options and must give the same layers, connections and weight
            shapes; the first difference is named otherwise. The new plan keeps the compiled kernels and tactics.
            """
    )

    @Argument(help: "The plan built by `kiln build`.")
    var plan: String

    @Option(help: "The ONNX model with the new weights.")
    var from: String

    @Option(name: .shortAndLong, help: "The plan file to write.")
    var output: String

    func run() throws {
        let start = Date()
        guard FileManager.default.fileExists(atPath: plan) else { throw KilnError.io("\(plan): no such file") }
        // The model, then the plan: the import holds about one copy of the new weights (`ModelFile`), and the
        // mapped plan is checked a chunk at a time without staying in memory (BENCHMARKS.md, "ONNX import
        // memory").
        let model = try ONNXImporter.load(contentsOf: ModelPath.resolve(from))
        guard let built = try EngineSource.readPlan(URL(fileURLWithPath: plan)) else {
            throw KilnError.invalidArgument("\(plan): not a Kiln plan (build one with `kiln build`)")
        }
        let refitted = try withErrorContext(from) {
            try built.refitted(from: model.graph, evaluator: CPUDevice(options: .untuned))
        }
        let file = URL(fileURLWithPath: output)
        try refitted.write(to: file)
        print(
            "refitted \(plan) with the weights of \(from): \(refitted.graph.initializers.count) weights; wrote "
                + "\(output) (\(BuildCommand.mib(try BuildCommand.fileSize(file)))) in \(String(format: "%.1f s", Date().timeIntervalSince(start)))"
        )
    }
}
