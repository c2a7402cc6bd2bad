import KilnIR

enum NormalizationImporters {
    static let table: [OperatorImporter] = []
}
