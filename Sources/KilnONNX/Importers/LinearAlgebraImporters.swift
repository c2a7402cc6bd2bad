import KilnIR

enum LinearAlgebraImporters {
    static let table: [OperatorImporter] = []
}
