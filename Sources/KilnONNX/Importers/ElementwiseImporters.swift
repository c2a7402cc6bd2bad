import KilnIR

enum ElementwiseImporters {
    static let table: [OperatorImporter] = []
}
