import KilnIR

enum SignalImporters {
    static let table: [OperatorImporter] = []
}
