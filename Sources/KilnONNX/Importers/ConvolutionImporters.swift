import KilnIR

enum ConvolutionImporters {
    static let table: [OperatorImporter] = []
}
