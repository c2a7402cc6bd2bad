import Foundation
import KilnIR
import KilnONNX
import KilnRuntime

/// Gathers a model's inputs for `kiln run`: from .npy files, an .npz archive, or seeded random values.
struct InputFeeds {
    let engine: Engine
    let files: [String]
    let archive: String?
    let shapes: [String]
    let seed: UInt64

    func values() throws -> [String: Value] {
        var feeds: [String: Value] = [:]
        let names = Set(engine.inputs.map(\.name))
        func checkName(_ name: String, _ source: String) throws {
            guard names.contains(name) else {
                throw KilnError.invalidArgument(
                    "\(source): the model has no input '\(name)' (inputs: \(engine.inputs.map(\.name).joined(separator: ", ")))"
                )
            }
        }
        if let archive {
            let data = try read(archive)
            for (name, tensor) in try withErrorContext(archive, { try NPZ.decode(data) }) {
                try checkName(name, archive)
                feeds[name] = .tensor(tensor)
            }
        }
        for spec in files {
            let (name, value) = try ShapeText.nameValue(spec, option: "--input")
            let path = String(value)
            try checkName(name, "--input \(spec)")
            let data = try read(path)
            feeds[name] = .tensor(try withErrorContext(path) { try NPY.decode(data) })
        }
        var shapeOverrides: [String: [Int]] = [:]
        for spec in shapes {
            let (name, value) = try ShapeText.nameValue(spec, option: "--shape")
            try checkName(name, "--shape \(spec)")
            shapeOverrides[name] = try ShapeText.dims(value, in: spec, option: "--shape")
        }
        var generator = RandomInputs(seed: seed)
        for info in engine.inputs where feeds[info.name] == nil {
            feeds[info.name] = .tensor(try generator.make(info, shape: shapeOverrides[info.name]))
        }
        return feeds
    }

    private func read(_ path: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: path) else { throw KilnError.io("\(path): no such file") }
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw KilnError.io("\(path): cannot read: \(error.localizedDescription)")
        }
    }
}

/// Seeded random tensors of an input's declared type; symbolic or unknown dimensions default to 1.
struct RandomInputs {
    var generator: SeededGenerator

    init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

    mutating func unit() -> Double { generator.unit() }

    mutating func make(_ info: GraphValue, shape override: [Int]?) throws -> Tensor {
        guard case .tensor(let type)? = info.type else {
            throw KilnError.invalidArgument("input '\(info.name)' is not a tensor of known type; give it with --input")
        }
        let shape =
            override
            ?? (type.shape ?? []).map { dim -> Int in
                if case .value(let v) = dim { return v }
                return 1
            }
        if let declared = type.shape, declared.count != shape.count {
            throw KilnError.shapeMismatch(
                "--shape for '\(info.name)' has rank \(shape.count), the model declares \(type)")
        }
        let count = Tensor.elementCount(shape)
        let values = (0..<count).map { _ in unit() }
        switch type.dtype {
        case .bool: return Tensor(shape: shape, scalars: values.map { $0 < 0.5 })
        case .string: return Tensor(shape: shape, strings: values.map { "s\(Int($0 * 100))" })
        case let dtype where dtype.isFloatingPoint:
            let floats = Tensor(shape: shape, scalars: values.map { Float($0 * 2 - 1) })
            guard dtype != .float32 else { return floats }
            return try convert(floats, to: dtype)
        case let dtype where dtype.isInteger:
            let ints = Tensor(shape: shape, scalars: values.map { Int64($0 * 10) })
            return try convert(ints, to: dtype)
        default:
            throw KilnError.unsupported("cannot make random values of \(type.dtype.onnxName) for input '\(info.name)'")
        }
    }

    private func convert(_ tensor: Tensor, to dtype: DType) throws -> Tensor {
        guard let scalar = dtype.scalarType else {
            throw KilnError.unsupported("cannot make random values of \(dtype.onnxName)")
        }
        let values = try tensor.doubleValues()
        return build(scalar, tensor.shape, values)
    }

    private func build<T: TensorScalar>(_ type: T.Type, _ shape: [Int], _ values: [Double]) -> Tensor {
        Tensor(shape: shape, scalars: values.map { T(castingFrom: $0) })
    }
}
