import KilnIR

enum TextImporters {
    static let table: [OperatorImporter] = []
}
