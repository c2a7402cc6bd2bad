import Foundation
import KilnIR
import KilnRuntime

/// A fused pointwise chain run as one loop. The output is walked in chunks of up to `chunk` elements of one
/// innermost run; in each chunk every step computes its elements from its operands' (an input's elements in
/// place, a broadcast input's single value, or an earlier step's chunk in a small scratch buffer that stays
/// in cache), so no intermediate tensor is written. Each step calls the element function of its own unfused
/// kernel (`withRealUnary`, `withRealBinary`), so the results are the unfused layers' bit for bit.
///
/// It serves chains of float unary ops and arithmetic binary ops on float32 or float64 inputs of one dtype;
/// the kernel runs anything else (select, comparisons, integers, 16-bit floats, whose unfused steps round
/// between layers) step by step.
struct FusedPointwiseLoop: Sendable {
    enum Op: Sendable {
        case unary(UnaryOp)
        case binary(BinaryOp)
    }

    struct Step: Sendable {
        let op: Op
        let operands: [FusedPointwiseLayer.Operand]
    }

    let steps: [Step]
    /// Elements per chunk: the scratch of a chain of ten steps stays within a core's L1 cache.
    static let chunk = 512

    /// nil when a step is not a float unary op or an arithmetic binary op.
    init?(_ layer: FusedPointwiseLayer) {
        var steps: [Step] = []
        for step in layer.steps {
            switch step.layer {
            case let unary as UnaryLayer where Self.isFloatFunction(unary.op) && step.operands.count == 1:
                steps.append(Step(op: .unary(unary.op), operands: step.operands))
            case let binary as BinaryLayer where Self.isArithmetic(binary.op) && step.operands.count == 2:
                steps.append(Step(op: .binary(binary.op), operands: step.operands))
            default: return nil
            }
        }
        guard !steps.isEmpty else { return nil }
        self.steps = steps
    }

    private static func isFloatFunction(_ op: UnaryOp) -> Bool {
        switch op {
        case .isNaN, .isInf, .not, .bitwiseNot: false
        default: true
        }
    }

    private static func isArithmetic(_ op: BinaryOp) -> Bool {
        switch op {
        case .add, .sub, .mul, .div, .pow, .mod, .max, .min, .prelu: true
        default: false
        }
    }

    /// The chain's output, or nil when these inputs are not tensors of one float dtype (float32, float64)
    /// whose broadcast is the chain's output shape.
    func run(_ inputs: [Value?], threads: Int) throws -> Tensor? {
        // The inputs the steps read, in order of first use; operands refer to them by position.
        var used: [Int] = []
        for step in steps {
            for case .input(let i) in step.operands where !used.contains(i) { used.append(i) }
        }
        var tensors: [Tensor] = []
        for i in used {
            guard i < inputs.count, case .tensor(let tensor)? = inputs[i] else { return nil }
            tensors.append(tensor)
        }
        guard let dtype = tensors.first?.dtype, dtype == .float32 || dtype == .float64,
            tensors.allSatisfy({ $0.dtype == dtype })
        else { return nil }
        // Each step's shape, as its unfused layer would have it; the last must be the broadcast of them all.
        var shapes: [[Int]] = []
        for step in steps {
            shapes.append(
                try Broadcast.shape(
                    step.operands.map { operand in
                        switch operand {
                        case .input(let i): tensors[used.firstIndex(of: i)!].shape
                        case .step(let s): shapes[s]
                        }
                    }))
        }
        let plan = try BroadcastPlan(tensors.map(\.shape))
        guard plan.shape == shapes[shapes.count - 1] else { return nil }
        let program = steps.map { step in
            Step(
                op: step.op,
                operands: step.operands.map { operand in
                    if case .input(let i) = operand { return .input(used.firstIndex(of: i)!) }
                    return operand
                })
        }
        return try dtype.visitKernelNumber(Runner(steps: program, tensors: tensors, plan: plan, threads: threads))
    }

    private struct Runner: KernelNumberVisitor {
        let steps: [Step]
        let tensors: [Tensor]
        let plan: BroadcastPlan
        let threads: Int

        func visitInteger<T: KernelNumber & FixedWidthInteger>(_ type: T.Type) throws -> Tensor? { nil }

        func visitReal<T: KernelReal>(_ type: T.Type) throws -> Tensor? {
            try withBases(T.self, from: 0, []) { bases in
                try Tensor.build(T.self, shape: plan.shape) { out in
                    guard let output = out.baseAddress, plan.count > 0 else { return }
                    try loop(bases, output)
                }
            }
        }

        /// Calls `body` with the base address of every input tensor.
        private func withBases<T: KernelReal, R>(
            _ type: T.Type, from k: Int, _ bases: [UnsafePointer<T>], _ body: ([UnsafePointer<T>]) throws -> R
        ) throws -> R {
            if k == tensors.count { return try body(bases) }
            return try tensors[k].withUnsafeBuffer(as: T.self) { buffer in
                guard let base = buffer.baseAddress else { throw KilnError.runtime("fused input \(k) has no storage") }
                return try withBases(T.self, from: k + 1, bases + [base], body)
            }
        }

        private func loop<T: KernelReal>(_ bases: [UnsafePointer<T>], _ output: UnsafeMutablePointer<T>) throws {
            let inner = plan.inner
            let chunk = FusedPointwiseLoop.chunk
            let chunksPerRow = (inner + chunk - 1) / chunk
            let items = plan.rows * chunksPerRow
            var failure: (any Error)?
            let lock = NSLock()
            Parallel.forEach(items, threads: threads, minimumChunk: max(1, elementwiseParallelThreshold / chunk)) {
                range in
                let scratch = UnsafeMutablePointer<T>.allocate(capacity: steps.count * chunk)
                let results = UnsafeMutablePointer<Source<T>>.allocate(capacity: steps.count)
                let rowInputs = UnsafeMutablePointer<Source<T>>.allocate(capacity: bases.count)
                // The program and the inputs' bases in buffers of this thread's: the loop below then touches no
                // reference count the other threads share (an atomic each, per chunk and step, otherwise).
                let program = UnsafeMutableBufferPointer<Code>.allocate(capacity: steps.count)
                let inputs = UnsafeMutableBufferPointer<UnsafePointer<T>>.allocate(capacity: bases.count)
                _ = program.initialize(from: steps.map(Code.init))
                _ = inputs.initialize(from: bases)
                defer {
                    scratch.deallocate()
                    results.deallocate()
                    rowInputs.deallocate()
                    program.deallocate()
                    inputs.deallocate()
                }
                var row = -1
                do {
                    for item in range {
                        let start = (item % chunksPerRow) * chunk
                        let n = min(chunk, inner - start)
                        if item / chunksPerRow != row {
                            row = item / chunksPerRow
                            for k in 0..<inputs.count {
                                let p = inputs[k] + plan.offset(k, row: row)
                                rowInputs[k] = plan.innerAdvances[k] ? .vector(p) : .scalar(p[0])
                            }
                        }
                        for s in 0..<program.count {
                            let step = program[s]
                            func source(_ operand: FusedPointwiseLayer.Operand) -> Source<T> {
                                switch operand {
                                case .input(let k): rowInputs[k].advanced(by: start)
                                case .step(let t): results[t]
                                }
                            }
                            let a = source(step.a)
                            let b = step.b.map(source) ?? a
                            let uniform = a.isScalar && b.isScalar
                            let last = s == program.count - 1
                            let target = last && !uniform ? output + row * inner + start : scratch + s * chunk
                            let count = uniform ? 1 : n
                            switch step.op {
                            case .unary(let op): try withRealUnary(op, UnaryChunk(x: a, y: target, n: count))
                            case .binary(let op): try withRealBinary(op, BinaryChunk(a: a, b: b, y: target, n: count))
                            }
                            results[s] = uniform ? .scalar(target[0]) : .vector(UnsafePointer(target))
                            if last && uniform { (output + row * inner + start).update(repeating: target[0], count: n) }
                        }
                    }
                } catch {
                    lock.lock()
                    failure = error
                    lock.unlock()
                }
            }
            if let failure { throw failure }
        }
    }
}

/// A step as the loop runs it: its op and its one or two operands, no arrays.
private struct Code {
    let op: FusedPointwiseLoop.Op
    let a: FusedPointwiseLayer.Operand
    let b: FusedPointwiseLayer.Operand?

    init(_ step: FusedPointwiseLoop.Step) {
        op = step.op
        a = step.operands[0]
        b = step.operands.count > 1 ? step.operands[1] : nil
    }
}

/// One operand's elements in a chunk: consecutive values, or one value for all of them.
private enum Source<T> {
    case vector(UnsafePointer<T>)
    case scalar(T)

    var isScalar: Bool {
        if case .scalar = self { return true }
        return false
    }

    func advanced(by n: Int) -> Source {
        if case .vector(let p) = self { return .vector(p + n) }
        return self
    }
}

private struct UnaryChunk<T: KernelReal>: RealUnaryConsumer {
    let x: Source<T>
    let y: UnsafeMutablePointer<T>
    let n: Int

    func callAsFunction<F: UnaryFunction>(_ f: F) where F.In == T {
        // The loop admits only ops whose result is the input's type.
        let out = UnsafeMutableRawPointer(y).assumingMemoryBound(to: F.Out.self)
        switch x {
        case .vector(let p): for i in 0..<n { out[i] = f(p[i]) }
        case .scalar(let v): out[0] = f(v)
        }
    }
}

private struct BinaryChunk<T: KernelReal>: NumberBinaryConsumer {
    let a: Source<T>
    let b: Source<T>
    let y: UnsafeMutablePointer<T>
    let n: Int

    func callAsFunction<F: BinaryFunction>(_ f: F) where F.In == T {
        let out = UnsafeMutableRawPointer(y).assumingMemoryBound(to: F.Out.self)
        switch (a, b) {
        case (.vector(let p), .vector(let q)): for i in 0..<n { out[i] = f(p[i], q[i]) }
        case (.vector(let p), .scalar(let s)): for i in 0..<n { out[i] = f(p[i], s) }
        case (.scalar(let s), .vector(let q)): for i in 0..<n { out[i] = f(s, q[i]) }
        case (.scalar(let s), .scalar(let t)): out[0] = f(s, t)
        }
    }
}
