import Foundation
import KilnIR
import KilnRuntime

/// Kernels of the ai.onnx.ml operators (registered through `MiscKernels.table`).
enum MLKernels {
    static let table: [(LayerKind, CPUKernelFactory)] =
        [
            labelEncoderKernel(),
            cpuKernel(ArrayFeatureExtractorLayer.self) { _, inputs, _ in
                [.tensor(try arrayFeatureExtractor(try inputs.tensor(0), try inputs.tensor(1)))]
            },
            cpuKernel(BinarizerLayer.self) { layer, inputs, _ in
                let x = try inputs.tensor(0)
                let values = try MiscSupport.doubles(x).map { $0 > Double(layer.threshold) ? 1.0 : 0.0 }
                return [.tensor(try MiscSupport.tensor(x.dtype, shape: x.shape, values))]
            },
            cpuKernel(TreeEnsembleLayer.self) { layer, inputs, _ in try MLTrees.run(layer, try inputs.tensor(0)) },
        ] + MLLinearKernels.table

    /// A table key: strings, or numbers compared as Double (int64 keys beyond 2^53 are not expected).
    enum Key: Hashable {
        case string(String)
        case number(Double)
    }

    static func keys(_ t: Tensor) throws -> [Key] {
        t.dtype == .string ? t.strings.map { .string($0) } : try MiscSupport.doubles(t).map { .number($0) }
    }

    /// Builds the lookup table once; each run maps input elements to positions in values + [default].
    static func labelEncoderKernel() -> (LayerKind, CPUKernelFactory) {
        (
            LabelEncoderLayer.kind,
            { layer, _ in
                guard let typed = layer as? LabelEncoderLayer else {
                    throw KilnError.runtime("labelEncoder kernel got \(type(of: layer))")
                }
                let keyList = try keys(typed.keys)
                guard keyList.count == typed.values.count else {
                    throw KilnError.invalidModel(
                        "LabelEncoder has \(keyList.count) keys and \(typed.values.count) values")
                }
                guard typed.defaultValue.count == 1, typed.defaultValue.dtype == typed.values.dtype else {
                    throw KilnError.invalidModel("LabelEncoder default must be one value of the values' type")
                }
                var table: [Key: Int] = [:]
                for (i, k) in keyList.enumerated() where table[k] == nil { table[k] = i }
                let lookup = table
                let source = try concatenate(typed.values, typed.defaultValue)
                let fallback = typed.values.count
                return ClosureKernel { inputs, _ in
                    let x = try inputs.tensor(0)
                    if (x.dtype == .string) != (typed.keys.dtype == .string) {
                        throw KilnError.typeMismatch(
                            "LabelEncoder input is \(x.dtype.onnxName), keys are \(typed.keys.dtype.onnxName)")
                    }
                    let picks = try keys(x).map { lookup[$0] ?? fallback }
                    return [.tensor(try gather(source, picks, shape: x.shape))]
                }
            }
        )
    }

    static func concatenate(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        if a.dtype == .string { return Tensor(shape: [a.count + b.count], strings: a.strings + b.strings) }
        return try a.dtype.visit(Concatenate(a: a, b: b))
    }

    /// Elements of 1-D `source` at `indices` (already validated), shaped as `shape`.
    static func gather(_ source: Tensor, _ indices: [Int], shape: [Int]) throws -> Tensor {
        if source.dtype == .string {
            let s = source.strings
            return Tensor(shape: shape, strings: indices.map { s[$0] })
        }
        return try source.dtype.visit(Gather(source: source, indices: indices, shape: shape))
    }

    private struct Concatenate: ScalarVisitor {
        let a: Tensor, b: Tensor
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            Tensor(shape: [a.count + b.count], scalars: a.scalars(as: T.self) + b.scalars(as: T.self))
        }
    }

    private struct Gather: ScalarVisitor {
        let source: Tensor, indices: [Int], shape: [Int]
        func visit<T: TensorScalar>(_ type: T.Type) throws -> Tensor {
            source.withUnsafeBuffer(as: T.self) { src in
                Tensor.build(T.self, shape: shape) { out in
                    for (i, j) in indices.enumerated() { out[i] = src[j] }
                }
            }
        }
    }

    static func arrayFeatureExtractor(_ x: Tensor, _ indices: Tensor) throws -> Tensor {
        guard x.rank >= 1 else { throw KilnError.shapeMismatch("ArrayFeatureExtractor needs rank >= 1 input") }
        let width = x.shape[x.rank - 1]
        let picks = try indices.int64Values().map { i -> Int in
            guard i >= 0, i < Int64(width) else {
                throw KilnError.invalidArgument("ArrayFeatureExtractor index \(i) is outside 0..<\(width)")
            }
            return Int(i)
        }
        let rows = x.count / max(width, 1)
        var flat: [Int] = []
        flat.reserveCapacity(try MiscSupport.checkedCount([rows, picks.count], "ArrayFeatureExtractor output"))
        for r in 0..<rows { for p in picks { flat.append(r * width + p) } }
        let shape = x.rank == 1 ? [1, picks.count] : Array(x.shape.dropLast()) + [picks.count]
        let source = try x.reshaped([x.count])
        return try gather(source, flat, shape: shape)
    }
}
