import KilnIR

/// ImageDecoder: PNG (8/16-bit, every colour type, not interlaced), BMP (24/32-bit uncompressed), PNM (P5/P6)
/// and uncompressed 8-bit TIFF. Every image is decoded to 8-bit RGB (or gray) first, then converted to the
/// requested pixel format; grayscale conversion uses Pillow's integer ITU-R 601-2 luma, which the ONNX
/// reference uses.
enum MiscImageDecoder {
    /// Decoded pixels: `channels` is 1 (gray) or 3 (RGB), row-major.
    struct Image {
        var width: Int
        var height: Int
        var channels: Int
        var pixels: [UInt8]
    }

    /// Images larger than this many pixels are refused rather than allocated.
    static let maxPixels = 1 << 26

    static func run(_ layer: ImageDecoderLayer, _ encoded: Tensor) throws -> Tensor {
        guard encoded.dtype == .uint8, encoded.rank == 1 else {
            throw KilnError.typeMismatch("ImageDecoder input must be a 1-D uint8 tensor")
        }
        let bytes = encoded.scalars(as: UInt8.self)
        let image = try decode(bytes)
        let count = image.width * image.height
        switch layer.pixelFormat {
        case .grayscale:
            if image.channels == 1 { return Tensor(shape: [image.height, image.width, 1], scalars: image.pixels) }
            let p = image.pixels
            let gray = (0..<count).map { i -> UInt8 in
                let (r, g, b) = (UInt32(p[3 * i]), UInt32(p[3 * i + 1]), UInt32(p[3 * i + 2]))
                return UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
            }
            return Tensor(shape: [image.height, image.width, 1], scalars: gray)
        case .rgb, .bgr:
            var rgb = image.pixels
            if image.channels == 1 { rgb = image.pixels.flatMap { [$0, $0, $0] } }
            if layer.pixelFormat == .bgr {
                for i in 0..<count { rgb.swapAt(3 * i, 3 * i + 2) }
            }
            return Tensor(shape: [image.height, image.width, 3], scalars: rgb)
        }
    }

    static func decode(_ b: [UInt8]) throws -> Image {
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try png(b) }
        if b.starts(with: [0x42, 0x4D]) { return try bmp(b) }
        if b.starts(with: [0x50, 0x35]) || b.starts(with: [0x50, 0x36]) { return try pnm(b) }
        if b.starts(with: [0x49, 0x49, 0x2A, 0x00]) || b.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return try tiff(b) }
        if b.starts(with: [0xFF, 0xD8]) { throw KilnError.unsupported("JPEG decoding is not supported by Kiln") }
        if b.count > 12, Array(b[8..<12]) == Array("WEBP".utf8) {
            throw KilnError.unsupported("WebP decoding is not supported by Kiln")
        }
        if b.starts(with: [0, 0, 0, 0x0C, 0x6A, 0x50]) || b.starts(with: [0xFF, 0x4F, 0xFF, 0x51]) {
            throw KilnError.unsupported("JPEG 2000 decoding is not supported by Kiln")
        }
        throw KilnError.unsupported("unrecognised image format")
    }

    static func checkedSize(_ width: Int, _ height: Int) throws {
        guard width > 0, height > 0, width <= maxPixels / height else {
            throw KilnError.invalidArgument("image size \(width)x\(height) is invalid or too large")
        }
    }

    // MARK: readers

    static func u16(_ b: [UInt8], _ at: Int, bigEndian: Bool) throws -> Int {
        guard at >= 0, at + 2 <= b.count else { throw KilnError.invalidArgument("image header is truncated") }
        return bigEndian ? Int(b[at]) << 8 | Int(b[at + 1]) : Int(b[at]) | Int(b[at + 1]) << 8
    }

    static func u32(_ b: [UInt8], _ at: Int, bigEndian: Bool) throws -> Int {
        guard at >= 0, at + 4 <= b.count else { throw KilnError.invalidArgument("image header is truncated") }
        let v = (0..<4).reduce(0) { acc, i in acc | Int(b[at + i]) << (bigEndian ? 8 * (3 - i) : 8 * i) }
        return v
    }

    // MARK: BMP

    static func bmp(_ b: [UInt8]) throws -> Image {
        let offset = try u32(b, 10, bigEndian: false)
        let width = try u32(b, 18, bigEndian: false)
        let rawHeight = Int32(truncatingIfNeeded: try u32(b, 22, bigEndian: false))
        let bpp = try u16(b, 28, bigEndian: false)
        let compression = try u32(b, 30, bigEndian: false)
        guard compression == 0, bpp == 24 || bpp == 32 else {
            throw KilnError.unsupported("BMP with \(bpp) bits per pixel or compression \(compression) is not supported")
        }
        let height = Int(rawHeight.magnitude)
        try checkedSize(width, height)
        let stride = (width * bpp / 8 + 3) / 4 * 4
        guard offset >= 0, offset + stride * height <= b.count else {
            throw KilnError.invalidArgument("BMP data is truncated")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            // Rows are stored bottom-up unless the height is negative.
            let row = rawHeight > 0 ? height - 1 - y : y
            for x in 0..<width {
                let p = offset + row * stride + x * bpp / 8
                let q = (y * width + x) * 3
                pixels[q] = b[p + 2]
                pixels[q + 1] = b[p + 1]
                pixels[q + 2] = b[p]
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    // MARK: PNM

    static func pnm(_ b: [UInt8]) throws -> Image {
        var position = 2
        func number() throws -> Int {
            // Whitespace and '#' comments separate the header fields.
            while position < b.count {
                if b[position] == UInt8(ascii: "#") {
                    while position < b.count && b[position] != 0x0A { position += 1 }
                } else if b[position] == 0x20 || (0x09...0x0D).contains(b[position]) {
                    position += 1
                } else {
                    break
                }
            }
            var value = 0
            var digits = 0
            while position < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[position]), digits < 9 {
                value = value * 10 + Int(b[position] - UInt8(ascii: "0"))
                position += 1
                digits += 1
            }
            guard digits > 0 else { throw KilnError.invalidArgument("PNM header is malformed") }
            return value
        }
        let channels = b[1] == UInt8(ascii: "6") ? 3 : 1
        let width = try number()
        let height = try number()
        let maxValue = try number()
        try checkedSize(width, height)
        guard maxValue > 0, maxValue < 256 else {
            throw KilnError.unsupported("PNM with maxval \(maxValue) is not supported")
        }
        position += 1
        let count = width * height * channels
        guard position + count <= b.count else { throw KilnError.invalidArgument("PNM data is truncated") }
        var pixels = Array(b[position..<(position + count)])
        if maxValue != 255 { pixels = pixels.map { UInt8(min(255, (Int($0) * 255 + maxValue / 2) / maxValue)) } }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    // MARK: TIFF

    static func tiff(_ b: [UInt8]) throws -> Image {
        let big = b[0] == 0x4D
        let ifd = try u32(b, 4, bigEndian: big)
        let entries = try u16(b, ifd, bigEndian: big)
        var tags: [Int: [Int]] = [:]
        for e in 0..<entries {
            let at = ifd + 2 + e * 12
            let tag = try u16(b, at, bigEndian: big)
            let type = try u16(b, at + 2, bigEndian: big)
            let count = try u32(b, at + 4, bigEndian: big)
            let size = type == 3 ? 2 : type == 4 ? 4 : type == 1 ? 1 : 0
            guard size > 0, count > 0, count < 1 << 20 else { continue }
            let base = count * size <= 4 ? at + 8 : try u32(b, at + 8, bigEndian: big)
            tags[tag] = try (0..<count).map { i in
                switch size {
                case 1:
                    guard base + i < b.count else { throw KilnError.invalidArgument("TIFF tag is truncated") }
                    return Int(b[base + i])
                case 2: return try u16(b, base + 2 * i, bigEndian: big)
                default: return try u32(b, base + 4 * i, bigEndian: big)
                }
            }
        }
        guard let width = tags[256]?.first, let height = tags[257]?.first, let offsets = tags[273],
            let counts = tags[279], offsets.count == counts.count
        else { throw KilnError.invalidArgument("TIFF is missing its size or strips") }
        try checkedSize(width, height)
        let samples = tags[277]?.first ?? 1
        let photometric = tags[262]?.first ?? 1
        guard (tags[259]?.first ?? 1) == 1, (tags[258] ?? [8]).allSatisfy({ $0 == 8 }), (tags[284]?.first ?? 1) == 1,
            samples == 1 || samples == 3 || samples == 4, photometric <= 2
        else { throw KilnError.unsupported("only uncompressed 8-bit chunky gray/RGB TIFF is supported") }
        var data: [UInt8] = []
        for (o, c) in zip(offsets, counts) {
            guard o >= 0, c >= 0, o + c <= b.count else { throw KilnError.invalidArgument("TIFF strip is truncated") }
            data.append(contentsOf: b[o..<(o + c)])
        }
        guard data.count >= width * height * samples else { throw KilnError.invalidArgument("TIFF data is truncated") }
        let channels = samples == 1 ? 1 : 3
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        for i in 0..<(width * height) {
            for c in 0..<channels { pixels[i * channels + c] = data[i * samples + c] }
        }
        if photometric == 0 { pixels = pixels.map { 255 - $0 } }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }
}
