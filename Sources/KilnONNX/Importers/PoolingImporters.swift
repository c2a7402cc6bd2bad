import KilnIR

enum PoolingImporters {
    static let table: [OperatorImporter] = []
}
