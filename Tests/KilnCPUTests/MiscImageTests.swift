import KilnCPU
import KilnIR
import KilnTestSupport
import Testing

/// A 7x5 RGB PNG whose rows use filters None, Sub, Up, Average and Paeth, made with zlib (level 9).
private let png: [UInt8] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 7, 0, 0, 0, 5, 8, 2, 0, 0, 0, 6, 248, 97,
    143, 0, 0, 0, 114, 73, 68, 65, 84, 120, 218, 13, 204, 49, 1, 2, 49, 16, 4, 192, 61, 192, 192, 165, 160, 122, 48, 16,
    1, 161, 72, 4, 68, 2, 62, 34, 227, 75, 74, 20, 96, 32, 21, 85, 82, 220, 119, 40, 249, 43, 16, 176, 48, 2, 6, 74,
    106, 166, 17, 132, 101, 170, 26, 105, 38, 170, 186, 119, 151, 74, 68, 201, 43, 87, 108, 9, 245, 16, 221, 3, 52, 247,
    98, 195, 70, 67, 66, 10, 205, 143, 87, 234, 121, 217, 199, 165, 45, 239, 143, 204, 88, 159, 247, 199, 235, 123, 154,
    165, 219, 148, 255, 186, 1, 44, 41, 76, 224, 230, 63, 185, 155, 47, 111, 200, 85, 206, 221, 0, 0, 0, 0, 73, 69, 78,
    68, 174, 66, 96, 130,
]
private let pngPixels: [UInt8] = [
    17, 255, 255, 17, 60, 255, 200, 255, 0, 255, 0, 200, 60, 255, 17, 17, 200, 255, 255, 200, 200, 17, 17, 17, 255, 200,
    0, 0, 17, 255, 0, 60, 0, 60, 200, 255, 200, 200, 200, 255, 200, 17, 60, 0, 0, 17, 200, 17, 60, 200, 60, 200, 255,
    200, 255, 60, 255, 255, 200, 255, 17, 60, 0, 60, 255, 17, 60, 255, 255, 255, 0, 17, 255, 60, 60, 0, 0, 200, 200, 0,
    60, 0, 200, 17, 0, 60, 200, 200, 0, 0, 255, 255, 0, 200, 255, 60, 255, 60, 255, 17, 0, 60, 0, 0, 0,
]

private func decode(_ bytes: [UInt8], _ format: ImageDecoderLayer.PixelFormat) throws -> Tensor {
    try LayerRunner.run(ImageDecoderLayer(pixelFormat: format), Tensor(shape: [bytes.count], scalars: bytes))
}

/// Pillow's integer ITU-R 601-2 luma, written independently of the kernel.
private func luma(_ rgb: [UInt8]) -> [UInt8] {
    stride(from: 0, to: rgb.count, by: 3).map { i -> UInt8 in
        let r: Int = 299 * Int(rgb[i])
        let g: Int = 587 * Int(rgb[i + 1])
        let b: Int = 114 * Int(rgb[i + 2])
        return UInt8((r + g + b + 500) / 1000)
    }
}

@Suite struct MiscImageTests {
    @Test func pngWithEveryFilter() throws {
        let rgb = try decode(png, .rgb)
        #expect(rgb.shape == [5, 7, 3])
        #expect(rgb.scalars(as: UInt8.self) == pngPixels)
        let bgr = try decode(png, .bgr).scalars(as: UInt8.self)
        #expect(bgr[0] == pngPixels[2] && bgr[2] == pngPixels[0])
        let gray = try decode(png, .grayscale)
        #expect(gray.shape == [5, 7, 1])
        // The rounding of the two luma formulas may differ by one at exact halves.
        for (a, b) in zip(gray.scalars(as: UInt8.self), luma(pngPixels)) { #expect(abs(Int(a) - Int(b)) <= 1) }
    }

    @Test func bmpBottomUpWithPadding() throws {
        // 2x2, 24-bit: rows padded to 8 bytes, stored bottom row first, pixels as BGR.
        var bmp: [UInt8] =
            Array("BM".utf8) + [0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24, 0]
        bmp += [UInt8](repeating: 0, count: 54 - bmp.count)
        bmp += [3, 2, 1, 6, 5, 4, 0, 0] + [9, 8, 7, 12, 11, 10, 0, 0]
        let y = try decode(bmp, .rgb)
        #expect(y.shape == [2, 2, 3])
        #expect(y.scalars(as: UInt8.self) == [7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6])
    }

    @Test func pnmWithComment() throws {
        let ppm = Array("P6\n# made by hand\n2 1\n255\n".utf8) + [10, 20, 30, 40, 50, 60]
        #expect(try decode(ppm, .rgb).scalars(as: UInt8.self) == [10, 20, 30, 40, 50, 60])
        let pgm = Array("P5 3 1 255\n".utf8) + [0, 128, 255]
        let y = try decode(pgm, .rgb)
        #expect(y.shape == [1, 3, 3])
        #expect(y.scalars(as: UInt8.self) == [0, 0, 0, 128, 128, 128, 255, 255, 255])
    }

    @Test func unsupportedAndBrokenImagesThrow() throws {
        #expect(throws: KilnError.self) { try decode([0xFF, 0xD8, 0xFF, 0xE0], .rgb) }
        #expect(throws: KilnError.self) { try decode(Array(png.prefix(60)), .rgb) }
        var corrupt = png
        for i in 41..<min(60, corrupt.count) { corrupt[i] ^= 0x5A }
        #expect(throws: KilnError.self) { try decode(corrupt, .rgb) }
        #expect(throws: KilnError.self) { try decode(Array("P6\n99999 99999\n255\n".utf8), .rgb) }
    }
}
