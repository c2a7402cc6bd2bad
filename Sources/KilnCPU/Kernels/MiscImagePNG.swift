import KilnIR

extension MiscImageDecoder {
    /// PNG: IHDR, PLTE and the IDAT stream; scanline filters undone per byte. Alpha is dropped as Pillow's RGB
    /// view does; 16-bit samples keep their high byte.
    static func png(_ b: [UInt8]) throws -> Image {
        var position = 8
        var header: (width: Int, height: Int, depth: Int, color: Int, interlace: Int)? = nil
        var palette: [UInt8] = []
        var compressed: [UInt8] = []
        while position + 8 <= b.count {
            let length = try u32(b, position, bigEndian: true)
            let type = String(decoding: b[(position + 4)..<(position + 8)], as: UTF8.self)
            let start = position + 8
            guard length >= 0, start + length + 4 <= b.count else {
                throw KilnError.invalidArgument("PNG chunk is truncated")
            }
            let body = b[start..<(start + length)]
            switch type {
            case "IHDR":
                guard length >= 13 else { throw KilnError.invalidArgument("PNG header is truncated") }
                header = (
                    try u32(b, start, bigEndian: true), try u32(b, start + 4, bigEndian: true), Int(b[start + 8]),
                    Int(b[start + 9]), Int(b[start + 12])
                )
            case "PLTE": palette = Array(body)
            case "IDAT": compressed.append(contentsOf: body)
            case "IEND": position = b.count
            default: break
            }
            position = min(b.count, start + length + 4)
        }
        guard let h = header else { throw KilnError.invalidArgument("PNG has no IHDR chunk") }
        try checkedSize(h.width, h.height)
        guard h.interlace == 0 else { throw KilnError.unsupported("interlaced PNG is not supported") }
        let samplesPerPixel: Int
        switch h.color {
        case 0: samplesPerPixel = 1
        case 2: samplesPerPixel = 3
        case 3: samplesPerPixel = 1
        case 4: samplesPerPixel = 2
        case 6: samplesPerPixel = 4
        default: throw KilnError.invalidArgument("PNG colour type \(h.color) is not defined")
        }
        guard h.depth == 8 || h.depth == 16 else {
            throw KilnError.unsupported("PNG bit depth \(h.depth) is not supported")
        }
        let bytesPerPixel = samplesPerPixel * h.depth / 8
        let stride = h.width * bytesPerPixel
        let raw = try Inflater.zlib(compressed, limit: (stride + 1) * h.height)
        guard raw.count == (stride + 1) * h.height else {
            throw KilnError.invalidArgument("PNG image data is truncated")
        }
        var current = [UInt8](repeating: 0, count: stride)
        var previous = [UInt8](repeating: 0, count: stride)
        let channels = h.color == 2 || h.color == 3 || h.color == 6 ? 3 : 1
        var pixels = [UInt8](repeating: 0, count: h.width * h.height * channels)
        for y in 0..<h.height {
            let row = y * (stride + 1)
            let filter = raw[row]
            for i in 0..<stride {
                let x = raw[row + 1 + i]
                let a = i >= bytesPerPixel ? current[i - bytesPerPixel] : 0
                let up = previous[i]
                let c = i >= bytesPerPixel ? previous[i - bytesPerPixel] : 0
                switch filter {
                case 0: current[i] = x
                case 1: current[i] = x &+ a
                case 2: current[i] = x &+ up
                case 3: current[i] = x &+ UInt8((Int(a) + Int(up)) / 2)
                case 4: current[i] = x &+ paeth(a, up, c)
                default: throw KilnError.invalidArgument("PNG filter type \(filter) is not defined")
                }
            }
            for x in 0..<h.width {
                // The high byte of each sample (the only byte at depth 8).
                func sample(_ s: Int) -> UInt8 { current[x * bytesPerPixel + s * h.depth / 8] }
                let q = (y * h.width + x) * channels
                if h.color == 3 {
                    let index = Int(sample(0)) * 3
                    guard index + 3 <= palette.count else {
                        throw KilnError.invalidArgument("PNG palette index out of range")
                    }
                    pixels[q] = palette[index]
                    pixels[q + 1] = palette[index + 1]
                    pixels[q + 2] = palette[index + 2]
                } else {
                    for ch in 0..<channels { pixels[q + ch] = sample(ch) }
                }
            }
            swap(&current, &previous)
        }
        return Image(width: h.width, height: h.height, channels: channels, pixels: pixels)
    }

    private static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let (pa, pb, pc) = (abs(p - Int(a)), abs(p - Int(b)), abs(p - Int(c)))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }
}
