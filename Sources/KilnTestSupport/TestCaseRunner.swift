import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

/// The outcome of one ONNX test case.
public struct CaseResult: Sendable {
    public enum Status: String, Sendable { case pass, fail, skip }
    public var testCase: ONNXTestCase
    public var status: Status
    public var message: String
    public var seconds: Double
}

/// Runs ONNX backend test cases the way onnx's backend runner judges them.
public struct TestCaseRunner: Sendable {
    public let device: any Device
    /// Save each engine as a plan and run the engine loaded from it, which checks plan files on every case.
    public let throughPlan: Bool

    public init(device: any Device, throughPlan: Bool = false) {
        self.device = device
        self.throughPlan = throughPlan
    }

    public func run(_ testCase: ONNXTestCase) -> CaseResult {
        let start = Date()
        var result: (CaseResult.Status, String)
        do {
            result = try execute(testCase)
        } catch {
            result = (.fail, "\(error)")
        }
        // Messages name files relative to the case folder, so results files carry no machine paths.
        let oneLine = result.1.replacingOccurrences(of: testCase.directory.path + "/", with: "")
            .replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " ")
        return CaseResult(
            testCase: testCase, status: result.0, message: oneLine, seconds: Date().timeIntervalSince(start))
    }

    private func execute(_ testCase: ONNXTestCase) throws -> (CaseResult.Status, String) {
        let dataSets = testCase.dataSets()
        guard !dataSets.isEmpty else { return (.skip, "no test_data_set folders") }
        let model = try ONNXImporter.load(contentsOf: testCase.directory.appendingPathComponent("model.onnx"))
        var engine = try Builder.build(model.graph, device: device)
        if throughPlan {
            let file = try engine.plan(options: BuildOptions()).encoded()
            engine = try withErrorContext("through a plan") {
                try Engine(plan: EnginePlan(decoding: file), device: device)
            }
        }
        let context = engine.makeContext()
        var (rtol, atol) = testCase.tolerances()
        for dataSet in dataSets {
            let inputs = try ONNXTestCase.readValues(dataSet, prefix: "input", types: engine.inputs.map(\.type))
            let expected = try ONNXTestCase.readValues(dataSet, prefix: "output", types: engine.outputs.map(\.type))
            let feeds = Dictionary(uniqueKeysWithValues: zip(engine.inputs.map(\.name), inputs))
            let outputs = try context.run(feeds)
            for (info, want) in zip(engine.outputs, expected) {
                guard let got = outputs[info.name] else { return (.fail, "output '\(info.name)' missing") }
                // onnx's runner loosens rtol for bfloat16 outputs to bfloat16's precision.
                if case .tensor(let t) = want, t.dtype == .bfloat16 { rtol = max(rtol, 1.0 / 64) }
                if let reason = Comparison.mismatch(got, want, rtol: rtol, atol: atol) {
                    return (.fail, "\(dataSet.lastPathComponent) output '\(info.name)': \(reason)")
                }
            }
        }
        return (.pass, "")
    }
}
