import KilnIR

enum ReductionImporters {
    static let table: [OperatorImporter] = []
}
