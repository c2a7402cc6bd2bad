import KilnIR

enum MiscImporters {
    static let table: [OperatorImporter] = []
}
