import KilnIR

enum SequenceImporters {
    static let table: [OperatorImporter] = []
}
