import KilnIR

enum RecurrentImporters {
    static let table: [OperatorImporter] = []
}
