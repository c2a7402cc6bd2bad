import KilnIR

enum ShapeImporters {
    static let table: [OperatorImporter] = []
}
