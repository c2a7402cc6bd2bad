import KilnIR

enum IndexingImporters {
    static let table: [OperatorImporter] = []
}
