import KilnIR

enum ControlFlowImporters {
    static let table: [OperatorImporter] = []
}
