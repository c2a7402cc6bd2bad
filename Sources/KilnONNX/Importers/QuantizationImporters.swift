import KilnIR

enum QuantizationImporters {
    static let table: [OperatorImporter] = []
}
