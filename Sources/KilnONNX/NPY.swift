import Foundation
import KilnIR

/// NumPy `.npy` files (format 1.0-3.0), little-endian, C order. Every Kiln dtype with a NumPy equivalent.
public enum NPY {
    /// NumPy's type code for each dtype (`descr` in the header).
    static func descr(_ dtype: DType) throws -> String {
        switch dtype {
        case .float32: "<f4"
        case .float64: "<f8"
        case .float16: "<f2"
        case .int8: "|i1"
        case .int16: "<i2"
        case .int32: "<i4"
        case .int64: "<i8"
        case .uint8: "|u1"
        case .uint16: "<u2"
        case .uint32: "<u4"
        case .uint64: "<u8"
        case .bool: "|b1"
        case .complex64: "<c8"
        case .complex128: "<c16"
        // ml_dtypes' bfloat16 has no standard code; store its bits as raw 2-byte void so nothing is lost.
        case .bfloat16: "<V2"
        default: throw KilnError.unsupported("dtype \(dtype.onnxName) cannot be written as .npy")
        }
    }

    static func dtype(_ descr: String) throws -> DType {
        let table: [String: DType] = [
            "f4": .float32, "f8": .float64, "f2": .float16, "i1": .int8, "i2": .int16, "i4": .int32,
            "i8": .int64, "u1": .uint8, "u2": .uint16, "u4": .uint32, "u8": .uint64, "b1": .bool,
            "c8": .complex64, "c16": .complex128, "V2": .bfloat16,
        ]
        guard let first = descr.first, "<|=".contains(first), let dtype = table[String(descr.dropFirst())] else {
            throw KilnError.unsupported("NumPy dtype '\(descr)' is not supported (little-endian numeric or bool only)")
        }
        return dtype
    }

    public static func encode(_ tensor: Tensor) throws -> Data {
        if tensor.dtype == .string { return try encodeStrings(tensor) }
        let shape = pythonTuple(tensor.shape)
        var data = header("{'descr': '\(try descr(tensor.dtype))', 'fortran_order': False, 'shape': \(shape), }")
        tensor.withUnsafeRawBytes { data.append(contentsOf: $0) }
        return data
    }

    /// A shape as Python writes a tuple: `()`, `(3,)`, `(2, 3)`.
    private static func pythonTuple(_ shape: [Int]) -> String {
        let items = shape.map(String.init).joined(separator: ", ")
        return shape.count == 1 ? "(\(items),)" : "(\(items))"
    }

    /// Strings are written as fixed-width UTF-32 (`<U n`), which is how NumPy stores str arrays.
    private static func encodeStrings(_ tensor: Tensor) throws -> Data {
        let scalars = tensor.strings.map { Array($0.unicodeScalars) }
        let width = max(1, scalars.map(\.count).max() ?? 1)
        let shape = pythonTuple(tensor.shape)
        var data = header("{'descr': '<U\(width)', 'fortran_order': False, 'shape': \(shape), }")
        for s in scalars {
            for i in 0..<width {
                var v = UInt32(i < s.count ? s[i].value : 0).littleEndian
                withUnsafeBytes(of: &v) { data.append(contentsOf: $0) }
            }
        }
        return data
    }

    private static func header(_ dict: String) -> Data {
        var text = dict
        let unpadded = 10 + text.utf8.count + 1
        text += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(text.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(text.utf8))
        return data
    }

    public static func decode(_ data: Data) throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw KilnError.invalidArgument("not a .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerStart = major == 1 ? 10 : 12
        guard bytes.count >= headerStart else { throw KilnError.invalidArgument("truncated .npy header") }
        let length =
            major == 1
            ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard headerStart + length <= bytes.count else { throw KilnError.invalidArgument("truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<headerStart + length], as: UTF8.self)
        guard let descr = field(header, "descr"), let fortran = field(header, "fortran_order"),
            let shapeText = field(header, "shape")
        else { throw KilnError.invalidArgument("malformed .npy header: \(header)") }
        guard fortran == "False" else { throw KilnError.unsupported("Fortran-order .npy files are not supported") }
        let shape = try shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "()"))
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { text -> Int in
                guard let v = Int(text), v >= 0 else { throw KilnError.invalidArgument("bad .npy shape \(shapeText)") }
                return v
            }
        let body = bytes[(headerStart + length)...]
        let count = Tensor.elementCount(shape)
        if descr.hasPrefix("<U") || descr.hasPrefix("|U") {
            guard let width = Int(descr.dropFirst(2)), body.count == count * width * 4 else {
                throw KilnError.invalidArgument("string .npy data does not match its shape")
            }
            let values = Array(body)
            let strings = (0..<count).map { i -> String in
                var s = String.UnicodeScalarView()
                for j in 0..<width {
                    let o = (i * width + j) * 4
                    let v =
                        UInt32(values[o]) | UInt32(values[o + 1]) << 8 | UInt32(values[o + 2]) << 16
                        | UInt32(values[o + 3]) << 24
                    if v == 0 { break }
                    if let u = Unicode.Scalar(v) { s.append(u) }
                }
                return String(s)
            }
            return Tensor(shape: shape, strings: strings)
        }
        let dtype = try self.dtype(descr)
        guard body.count == count * dtype.byteSize else {
            throw KilnError.invalidArgument(
                ".npy data has \(body.count) bytes, shape \(shape) of \(descr) needs \(count * dtype.byteSize)")
        }
        return try Array(body).withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
    }

    /// The text of `'key': value` in a NumPy header dict (value up to the next top-level comma).
    private static func field(_ header: String, _ key: String) -> String? {
        guard let range = header.range(of: "'\(key)':") else { return nil }
        var rest = header[range.upperBound...].drop(while: { $0 == " " })
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        if rest.first == "'" {
            rest = rest.dropFirst()
            guard let close = rest.firstIndex(of: "'") else { return nil }
            return String(rest[..<close])
        }
        return String(rest.prefix(while: { $0 != "," && $0 != "}" })).trimmingCharacters(in: .whitespaces)
    }
}
