import KilnIR

/// Conv, ConvInteger, ConvTranspose, DeformConv, CausalConvWithState and Col2Im.
enum ConvolutionImporters {
    static let table: [OperatorImporter] = [
        .layer("Conv") { c in ConvolutionLayer(try parameters(c)) },
        .layer("ConvInteger", since: 10) { c in ConvolutionIntegerLayer(try parameters(c)) },
        .layer("ConvTranspose") { c in
            DeconvolutionLayer(
                try parameters(c), outputPadding: try c.ints("output_padding", default: []),
                outputShape: try c.ints("output_shape", default: []))
        },
        .layer("DeformConv", since: 19) { c in
            DeformableConvolutionLayer(try parameters(c), offsetGroup: try c.int("offset_group", default: 1))
        },
        .layer("CausalConvWithState", since: 27) { c in
            switch try c.string("activation", default: "none") {
            case "none": return CausalConvolutionLayer(activation: .none)
            case "silu", "swish": return CausalConvolutionLayer(activation: .silu)
            case let other: throw c.unsupported("CausalConvWithState activation '\(other)'")
            }
        },
        .layer("Col2Im", since: 18) { c in
            Col2ImLayer(
                strides: try c.ints("strides", default: []), dilations: try c.ints("dilations", default: []),
                pads: try c.ints("pads", default: []))
        },
    ]

    /// The geometry attributes every convolution shares.
    static func parameters(_ c: ImportContext) throws -> ConvolutionParameters {
        let autoPad: ConvolutionAutoPad
        switch try c.string("auto_pad", default: "NOTSET") {
        case "NOTSET", "": autoPad = .explicit
        case "SAME_UPPER": autoPad = .sameUpper
        case "SAME_LOWER": autoPad = .sameLower
        case "VALID": autoPad = .valid
        case let other: throw c.invalid("unknown auto_pad '\(other)'")
        }
        let group = try c.int("group", default: 1)
        guard group > 0 else { throw c.invalid("group must be positive, is \(group)") }
        return ConvolutionParameters(
            kernelShape: try c.ints("kernel_shape", default: []), strides: try c.ints("strides", default: []),
            dilations: try c.ints("dilations", default: []), pads: try c.ints("pads", default: []),
            autoPad: autoPad, group: group)
    }
}
