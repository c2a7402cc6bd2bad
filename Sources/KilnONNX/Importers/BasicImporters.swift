import KilnIR

/// Constant and Identity: the operators every model uses.
enum BasicImporters {
    static let table: [OperatorImporter] = [
        OperatorImporter("Constant") { c in
            guard c.outputs.count == 1 else { throw c.invalid("Constant has one output") }
            c.defineConstant(c.outputs[0], try constantValue(c))
        },
        .layer("Identity") { _ in IdentityLayer() },
    ]

    private static func constantValue(_ c: ImportContext) throws -> Tensor {
        guard c.node.attributes.count == 1, let (name, value) = c.node.attributes.first else {
            throw c.invalid("Constant needs exactly one value attribute, has \(c.node.attributes.count)")
        }
        switch (name, value) {
        case ("value", .tensor(let t)), ("sparse_value", .tensor(let t)): return t
        case ("value_float", .float(let v)): return Tensor(scalar: v)
        case ("value_floats", .floats(let v)): return Tensor(shape: [v.count], scalars: v)
        case ("value_int", .int(let v)): return Tensor(scalar: v)
        case ("value_ints", .ints(let v)): return Tensor(shape: [v.count], scalars: v)
        case ("value_string", .string(let v)): return Tensor(shape: [], strings: [v])
        case ("value_strings", .strings(let v)): return Tensor(shape: [v.count], strings: v)
        default: throw c.invalid("Constant attribute '\(name)' is not a constant value")
        }
    }
}
