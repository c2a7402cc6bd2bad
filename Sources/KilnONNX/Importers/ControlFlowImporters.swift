import KilnIR

/// If, Loop and Scan: bodies are imported as subgraphs that see the enclosing graph's values.
enum ControlFlowImporters {
    static let table: [OperatorImporter] = [
        .layer("If") { c in
            IfLayer(thenBranch: try c.graph("then_branch"), elseBranch: try c.graph("else_branch"))
        },
        .layer("Loop") { c in
            let carried = c.inputElementDTypes().dropFirst(2).map { $0 }
            return LoopLayer(body: try c.graph("body", inputTypes: [.int64, .bool] + carried))
        },
        OperatorImporter("Scan", since: 8) { c in try importScan(c) },
    ]

    private static func importScan(_ c: ImportContext) throws {
        // Body inputs are the states then one slice per scan input: the same element types as the Scan's inputs
        // (after the optional sequence_lens of opset 8).
        let first = c.version == 8 ? 1 : 0
        let body = try c.graph("body", inputTypes: Array(c.inputElementDTypes().dropFirst(first)))
        let scans = try c.int("num_scan_inputs")
        guard scans >= 1, scans <= body.inputs.count else {
            throw c.invalid("num_scan_inputs \(scans) does not fit a body with \(body.inputs.count) inputs")
        }
        let states = body.inputs.count - scans
        let outputs = body.outputs.count - states
        guard outputs >= 0 else { throw c.invalid("the body returns fewer values than there are states") }
        if c.version == 8 {
            let directions = try c.ints("directions", default: Array(repeating: 0, count: scans))
            guard directions.count == scans else { throw c.invalid("directions needs \(scans) entries") }
            // Keep input 0 (sequence_lens) in place even when omitted: the kernel reads inputs by position.
            let inputs = c.node.inputs.isEmpty ? [""] : c.node.inputs
            c.emit(
                ScanLayer(
                    body: body, numScanInputs: scans, inputAxes: Array(repeating: 0, count: scans),
                    inputReversed: directions.map { $0 != 0 }, outputAxes: Array(repeating: 0, count: outputs),
                    outputReversed: Array(repeating: false, count: outputs), batched: true),
                inputs: inputs)
            return
        }
        let inputAxes = try c.ints("scan_input_axes", default: Array(repeating: 0, count: scans))
        let inputDirections = try c.ints("scan_input_directions", default: Array(repeating: 0, count: scans))
        let outputAxes = try c.ints("scan_output_axes", default: Array(repeating: 0, count: outputs))
        let outputDirections = try c.ints("scan_output_directions", default: Array(repeating: 0, count: outputs))
        guard inputAxes.count == scans, inputDirections.count == scans, outputAxes.count == outputs,
            outputDirections.count == outputs
        else {
            throw c.invalid("scan axis/direction attributes do not match \(scans) scan inputs and \(outputs) outputs")
        }
        c.emit(
            ScanLayer(
                body: body, numScanInputs: scans, inputAxes: inputAxes, inputReversed: inputDirections.map { $0 != 0 },
                outputAxes: outputAxes, outputReversed: outputDirections.map { $0 != 0 }))
    }
}
