import KilnIR
import KilnRuntime

/// Kernels for If, Loop and Scan. Bodies are compiled once, when the kernel is made, and run with the
/// enclosing graph's scope so that they read captured values.
enum ControlFlowKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        (IfLayer.kind, ifFactory),
        (LoopLayer.kind, loopFactory),
        (ScanLayer.kind, ScanKernel.factory),
    ]

    static func cast<L: Layer>(_ layer: any Layer, _ type: L.Type) throws -> L {
        guard let typed = layer as? L else {
            throw KilnError.runtime("layer of kind \(L.kind) has unexpected parameter type \(Swift.type(of: layer))")
        }
        return typed
    }

    static let ifFactory: CPUKernelFactory = { layer, compiler in
        let typed = try cast(layer, IfLayer.self)
        let thenBody = try withErrorContext("then_branch") { try compiler.compile(typed.thenBranch) }
        let elseBody = try withErrorContext("else_branch") { try compiler.compile(typed.elseBranch) }
        return ClosureKernel { inputs, context in
            let taken = try TensorSlicing.condition(inputs.tensor(0))
            return try withErrorContext(taken ? "then_branch" : "else_branch") {
                try (taken ? thenBody : elseBody).run([], outer: context.scope)
            }
        }
    }

    static let loopFactory: CPUKernelFactory = { layer, compiler in
        let typed = try cast(layer, LoopLayer.self)
        let body = try withErrorContext("body") { try compiler.compile(typed.body) }
        let scanTypes = typed.body.outputs.map(\.type)
        return ClosureKernel { inputs, context in
            let maxTrips = try inputs.optionalTensor(0).map { try TensorSlicing.scalarInt($0, "M") }
            var condition = try inputs.optionalTensor(1).map { try TensorSlicing.condition($0) } ?? true
            var carried = try inputs.dropFirst(2).enumerated().map { index, value -> Value in
                guard let value else { throw KilnError.invalidArgument("loop-carried input \(index) is missing") }
                return value
            }
            let scanCount = scanTypes.count - 1 - carried.count
            guard scanCount >= 0 else {
                throw KilnError.invalidModel("Loop body returns \(scanTypes.count) values for \(carried.count) carried")
            }
            var scans = [[Tensor]](repeating: [], count: scanCount)
            var iteration = 0
            while condition, maxTrips.map({ iteration < $0 }) ?? true {
                let args: [Value] =
                    [.tensor(Tensor(scalar: Int64(iteration))), .tensor(Tensor(scalar: condition))] + carried
                let outs = try withErrorContext("iteration \(iteration)") { try body.run(args, outer: context.scope) }
                condition = try TensorSlicing.condition(outs[0].asTensor())
                carried = Array(outs[1..<(1 + carried.count)])
                for k in 0..<scanCount {
                    scans[k].append(
                        try withErrorContext("scan output \(k)") { try outs[1 + carried.count + k].asTensor() })
                }
                iteration += 1
            }
            var results = carried
            for k in 0..<scanCount {
                if scans[k].isEmpty {
                    results.append(.tensor(emptyStack(scanTypes[1 + carried.count + k])))
                } else {
                    results.append(.tensor(try TensorSlicing.stack(scans[k], axis: 0)))
                }
            }
            return results
        }
    }

    /// A scan output of zero iterations: shape [0, dims of one iteration] where known.
    static func emptyStack(_ type: ValueType?) -> Tensor {
        let t = type?.tensorType
        let dims = t?.shape?.map { $0.value ?? 0 } ?? []
        return Tensor(zeros: t?.dtype ?? .float32, shape: [0] + dims)
    }
}

/// Scan: opset 9+ semantics over per-input axes and directions; the opset 8 batched form runs it per batch.
enum ScanKernel {
    static let factory: CPUKernelFactory = { layer, compiler in
        let typed = try ControlFlowKernels.cast(layer, ScanLayer.self)
        let body = try withErrorContext("body") { try compiler.compile(typed.body) }
        return ClosureKernel { inputs, context in
            try withErrorContext("Scan") {
                typed.batched
                    ? try runBatched(typed, body, inputs, context) : try run(typed, body, inputs.map { $0 }, context)
            }
        }
    }

    static func run(
        _ layer: ScanLayer, _ body: CompiledGraph, _ inputs: [Value?], _ context: KernelContext
    ) throws
        -> [Value]
    {
        let states = layer.numStates
        guard states >= 0, layer.body.outputs.count >= states else {
            throw KilnError.invalidModel("Scan body has too few inputs or outputs for its scan inputs")
        }
        guard inputs.count == states + layer.numScanInputs else {
            throw KilnError.invalidArgument("Scan takes \(states + layer.numScanInputs) inputs, got \(inputs.count)")
        }
        var carried = try (0..<states).map { i -> Value in
            guard let v = inputs[i] else { throw KilnError.invalidArgument("state input \(i) is missing") }
            return v
        }
        let scanned = try (0..<layer.numScanInputs).map { try inputs.tensor(states + $0) }
        var length: Int? = nil
        var axes: [Int] = []
        for (j, t) in scanned.enumerated() {
            let axis = try TensorSlicing.axis(j < layer.inputAxes.count ? layer.inputAxes[j] : 0, rank: t.rank)
            axes.append(axis)
            if let length, length != t.shape[axis] {
                throw KilnError.shapeMismatch("scan input \(j) has length \(t.shape[axis]), expected \(length)")
            }
            length = t.shape[axis]
        }
        let steps = length ?? 0
        let outputCount = layer.body.outputs.count - states
        var collected = [[Tensor]](repeating: [], count: outputCount)
        for step in 0..<steps {
            var args = carried
            for (j, t) in scanned.enumerated() {
                let reversed = j < layer.inputReversed.count && layer.inputReversed[j]
                let index = reversed ? steps - 1 - step : step
                args.append(.tensor(try TensorSlicing.slice(t, axis: axes[j], start: index, length: 1, dropAxis: true)))
            }
            let outs = try withErrorContext("iteration \(step)") { try body.run(args, outer: context.scope) }
            carried = Array(outs[..<states])
            for k in 0..<outputCount { collected[k].append(try outs[states + k].asTensor()) }
        }
        var results = carried
        for k in 0..<outputCount {
            var pieces = collected[k]
            if k < layer.outputReversed.count && layer.outputReversed[k] { pieces.reverse() }
            guard let first = pieces.first else {
                results.append(.tensor(ControlFlowKernels.emptyStack(layer.body.outputs[states + k].type)))
                continue
            }
            let rawAxis = k < layer.outputAxes.count ? layer.outputAxes[k] : 0
            let axis = try TensorSlicing.axis(rawAxis, rank: first.rank + 1)
            results.append(.tensor(try TensorSlicing.stack(pieces, axis: axis)))
        }
        return results
    }

    /// Opset 8: input 0 is the optional sequence lengths; every other input and every output has a leading
    /// batch axis, and the scan axis is 1.
    static func runBatched(
        _ layer: ScanLayer, _ body: CompiledGraph, _ inputs: [Value?], _ context: KernelContext
    )
        throws -> [Value]
    {
        let rest = try (1..<max(inputs.count, 1)).map { try inputs.tensor($0) }
        guard let batch = rest.first?.shape.first else { throw KilnError.invalidArgument("Scan needs inputs") }
        let lengths = try inputs.optionalTensor(0)?.intValues()
        var perBatch: [[Value]] = []
        let states = layer.numStates
        let full = states >= 0 && states < rest.count && rest[states].rank > 1 ? rest[states].shape[1] : 0
        if let lengths {
            guard lengths.count == batch, lengths.allSatisfy({ $0 >= 0 && $0 <= full }) else {
                throw KilnError.invalidArgument("sequence_lens \(lengths) must have \(batch) entries in 0...\(full)")
            }
        }
        for b in 0..<batch {
            let length = lengths?[b] ?? full
            // Scan inputs of a shorter sequence are cut to its length; its scan outputs are zero-padded back.
            let slices = try rest.enumerated().map { index, t -> Value? in
                guard t.shape.first == batch else {
                    throw KilnError.shapeMismatch("input of shape \(t.shape) does not have batch size \(batch)")
                }
                var slice = try TensorSlicing.slice(t, axis: 0, start: b, length: 1, dropAxis: true)
                if index >= states && length < full {
                    slice = try TensorSlicing.slice(slice, axis: 0, start: 0, length: length)
                }
                return .tensor(slice)
            }
            var results = try run(layer, body, slices, context)
            if length < full {
                for k in states..<results.count {
                    let produced = try results[k].asTensor()
                    guard produced.rank >= 1 else { continue }
                    var padShape = produced.shape
                    padShape[0] = full - length
                    let padding = Tensor(zeros: produced.dtype, shape: padShape)
                    results[k] = .tensor(try TensorSlicing.concat([produced, padding], axis: 0))
                }
            }
            perBatch.append(results)
        }
        guard let first = perBatch.first else { throw KilnError.unsupported("Scan with batch size 0") }
        return try first.indices.map { k in
            .tensor(try TensorSlicing.stack(perBatch.map { try $0[k].asTensor() }, axis: 0))
        }
    }
}
