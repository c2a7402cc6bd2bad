import Foundation
import KilnIR

/// NumPy `.npz` archives: a zip of `.npy` members. Reads stored members (`np.savez`); deflated members
/// (`np.savez_compressed`) are reported as unsupported. Writes stored archives.
public enum NPZ {
    public static func decode(_ data: Data) throws -> [(name: String, tensor: Tensor)] {
        let bytes = [UInt8](data)
        func u16(_ o: Int) throws -> Int {
            guard o + 2 <= bytes.count else { throw KilnError.invalidArgument("truncated .npz archive") }
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8
        }
        func u32(_ o: Int) throws -> Int { try u16(o) | (u16(o + 2) << 16) }
        // The end-of-central-directory record is within the last 64 KiB + 22 bytes.
        guard bytes.count >= 22,
            let eocd = stride(from: bytes.count - 22, through: max(0, bytes.count - 65_557), by: -1).first(where: {
                bytes[$0] == 0x50 && bytes[$0 + 1] == 0x4B && bytes[$0 + 2] == 5 && bytes[$0 + 3] == 6
            })
        else { throw KilnError.invalidArgument("not a .npz (zip) archive") }
        let entries = try u16(eocd + 10)
        var offset = try u32(eocd + 16)
        var members: [(String, Tensor)] = []
        for _ in 0..<entries {
            guard try u32(offset) == 0x0201_4B50 else {
                throw KilnError.invalidArgument("corrupt .npz central directory")
            }
            let method = try u16(offset + 10)
            let compressed = try u32(offset + 20)
            let nameLength = try u16(offset + 28)
            let extraLength = try u16(offset + 30)
            let commentLength = try u16(offset + 32)
            let local = try u32(offset + 42)
            guard offset + 46 + nameLength <= bytes.count else {
                throw KilnError.invalidArgument("truncated .npz archive")
            }
            let name = String(decoding: bytes[(offset + 46)..<(offset + 46 + nameLength)], as: UTF8.self)
            offset += 46 + nameLength + extraLength + commentLength
            guard method == 0 else {
                throw KilnError.unsupported(
                    "member '\(name)' is compressed; write the archive with np.savez, not np.savez_compressed")
            }
            guard try u32(local) == 0x0403_4B50 else {
                throw KilnError.invalidArgument("corrupt .npz member '\(name)'")
            }
            let start = local + 30 + (try u16(local + 26)) + (try u16(local + 28))
            guard start + compressed <= bytes.count else {
                throw KilnError.invalidArgument("truncated .npz member '\(name)'")
            }
            let tensor = try withErrorContext("member '\(name)'") {
                try NPY.decode(Data(bytes[start..<(start + compressed)]))
            }
            members.append((name.hasSuffix(".npy") ? String(name.dropLast(4)) : name, tensor))
        }
        return members
    }
}
