import Foundation
import KilnIR
import KilnRuntime

/// Kernels for the newest ONNX operators' layers: bitCast, gatedActivation and tensorScatter.
enum NewestKernels {
    static let table: [(LayerKind, CPUKernelFactory)] = [
        cpuKernel(BitCastLayer.self) { layer, inputs, _ in
            [.tensor(try bitCast(try inputs.tensor(0), to: layer.to))]
        },
        cpuKernel(GatedActivationLayer.self) { layer, inputs, context in
            [.tensor(try gatedActivation(layer, try inputs.tensor(0), try inputs.tensor(1), threads: context.threads))]
        },
        cpuKernel(TensorScatterLayer.self) { layer, inputs, _ in
            [
                .tensor(
                    try tensorScatter(
                        layer, past: try inputs.tensor(0), update: try inputs.tensor(1),
                        writeIndices: try inputs.optionalTensor(2)))
            ]
        },
    ]

    // MARK: BitCast

    static func bitCast(_ x: Tensor, to: DType) throws -> Tensor {
        guard x.dtype != .string, to != .string, x.dtype.byteSize == to.byteSize, to.byteSize > 0 else {
            throw KilnError.typeMismatch("bitCast from \(x.dtype) to \(to): element widths differ")
        }
        if to == .bool {
            // Swift's Bool must hold 0 or 1; any other byte is true.
            return x.withUnsafeRawBytes { raw in
                Tensor.build(Bool.self, shape: x.shape) { out in
                    for i in 0..<out.count { out[i] = raw[i] != 0 }
                }
            }
        }
        return try x.withUnsafeRawBytes { raw in
            try Tensor(dtype: to, shape: x.shape, rawBytes: UnsafeRawBufferPointer(rebasing: raw[0..<x.byteCount]))
        }
    }

    // MARK: SwiGLU

    static func gatedActivation(
        _ layer: GatedActivationLayer, _ a: Tensor, _ b: Tensor, threads: Int
    ) throws -> Tensor {
        guard a.dtype == b.dtype else {
            throw KilnError.typeMismatch("gatedActivation inputs have types \(a.dtype) and \(b.dtype)")
        }
        guard a.shape == b.shape else {
            throw KilnError.shapeMismatch("gatedActivation inputs have shapes \(a.shape) and \(b.shape)")
        }
        guard a.dtype.isFloatingPoint, a.dtype.scalarType != nil else {
            throw KilnError.unsupported("gatedActivation of \(a.dtype)")
        }
        return try a.dtype.visit(SwishGate(a: a, b: b, alpha: Double(layer.alpha), threads: threads))
    }

    struct SwishGate: ScalarVisitor {
        let a: Tensor
        let b: Tensor
        let alpha: Double
        let threads: Int

        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            a.withUnsafeBuffer(as: T.self) { pa in
                b.withUnsafeBuffer(as: T.self) { pb in
                    Tensor.build(T.self, shape: a.shape) { out in
                        let shared = UncheckedSendable(out)
                        Parallel.forEach(out.count, threads: threads, minimumChunk: 16384) { range in
                            for i in range {
                                let x = pa[i].doubleValue
                                let gate = x / (1 + Foundation.exp(-alpha * x))
                                shared.value[i] = T(castingFrom: gate * pb[i].doubleValue)
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: TensorScatter

    static func tensorScatter(
        _ layer: TensorScatterLayer, past: Tensor, update: Tensor, writeIndices: Tensor?
    ) throws -> Tensor {
        guard past.dtype == update.dtype, past.dtype != .string, past.dtype.byteSize > 0 else {
            throw KilnError.typeMismatch("tensorScatter of \(past.dtype) with an update of \(update.dtype)")
        }
        let rank = past.rank
        guard rank >= 2, update.rank == rank, layer.axis >= -rank, layer.axis < rank else {
            throw KilnError.shapeMismatch(
                "tensorScatter cache \(past.shape), update \(update.shape), axis \(layer.axis)")
        }
        let axis = layer.axis < 0 ? layer.axis + rank : layer.axis
        guard axis > 0 else { throw KilnError.invalidArgument("tensorScatter axis must not be the batch axis") }
        for d in 0..<rank where d != axis && past.shape[d] != update.shape[d] {
            throw KilnError.shapeMismatch("tensorScatter cache \(past.shape) and update \(update.shape) differ at \(d)")
        }
        let capacity = past.shape[axis]
        let length = update.shape[axis]
        guard length <= capacity else {
            throw KilnError.shapeMismatch("tensorScatter update length \(length) exceeds cache length \(capacity)")
        }
        let batch = past.shape[0]
        let prefix = past.shape[..<axis].reduce(1, *)
        let perBatch = batch > 0 ? prefix / batch : 0
        let rowBytes = past.shape[(axis + 1)...].reduce(1, *) * past.dtype.byteSize
        var starts = [Int](repeating: 0, count: batch)
        if let writeIndices {
            let values = try writeIndices.intValues()
            guard values.count == batch else {
                throw KilnError.shapeMismatch(
                    "tensorScatter write_indices has \(values.count) entries, batch is \(batch)")
            }
            starts = values
        }
        for (b, start) in starts.enumerated() {
            guard start >= 0, layer.circular || start + length <= capacity, capacity > 0 || length == 0 else {
                throw KilnError.invalidArgument(
                    "tensorScatter write index \(start) for batch \(b) does not fit length \(length) in \(capacity)")
            }
        }
        var bytes = [UInt8](repeating: 0, count: past.byteCount)
        bytes.withUnsafeMutableBytes { out in
            past.withUnsafeRawBytes { src in
                guard past.byteCount > 0, let base = out.baseAddress, let from = src.baseAddress else { return }
                base.copyMemory(from: from, byteCount: past.byteCount)
            }
            update.withUnsafeRawBytes { src in
                guard rowBytes > 0, let base = out.baseAddress, let from = src.baseAddress else { return }
                for p in 0..<prefix {
                    let start = starts[p / max(perBatch, 1)]
                    for s in 0..<length {
                        let slot = layer.circular ? (start + s) % capacity : start + s
                        (base + (p * capacity + slot) * rowBytes).copyMemory(
                            from: from + (p * length + s) * rowBytes, byteCount: rowBytes)
                    }
                }
            }
        }
        return try bytes.withUnsafeBytes { try Tensor(dtype: past.dtype, shape: past.shape, rawBytes: $0) }
    }
}
