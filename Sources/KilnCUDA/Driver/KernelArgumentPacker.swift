import KilnIR

/// Lays kernel arguments out in memory the way `cuLaunchKernel`'s `kernelParams` reads them: each argument at
/// its C ABI alignment, and `kernelParams[i]` pointing at argument `i`. Pure, so it is tested without a GPU.
public enum KernelArgumentPacker {
    /// The packed bytes and where each argument starts.
    public struct Packed: Sendable, Equatable {
        /// Little-endian argument bytes; the buffer they are copied into must be 64-byte aligned (tensor maps).
        public var bytes: [UInt8]
        /// Byte offset of each argument, in argument order.
        public var offsets: [Int]
    }

    /// The size of a `KilnDims` struct (8 `i64`s), passed by value.
    public static let dimsBytes = 8 * CUDAPrelude.maxRank

    /// Packs `arguments`, resolving each pointer operand to the device address of its first byte through
    /// `resolve` (the argument's `offset` is added here). Int32 and Float take 4 aligned bytes; Int64, Double and
    /// pointers 8; `.dims` a 64-byte, 8-aligned struct of 8 Int64 padded with zeros (more than 8 dims is an error);
    /// `.tensorMap` the 128 bytes `encode` returns for the map at its operand's address, 64-byte aligned.
    public static func pack(
        _ arguments: [CUDAArgument], resolve: (CUDAOperand) throws -> UInt64,
        encode: (CUDATensorMap, UInt64) throws -> [UInt8] = { _, _ in
            throw KilnError.unsupported("tensor map arguments need a CUDA context to encode them")
        }
    ) throws -> Packed {
        var bytes: [UInt8] = []
        var offsets: [Int] = []
        offsets.reserveCapacity(arguments.count)
        func append<T>(_ value: T, alignment: Int) {
            while bytes.count % alignment != 0 { bytes.append(0) }
            offsets.append(bytes.count)
            withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        }
        for (index, argument) in arguments.enumerated() {
            switch argument {
            case .pointer(let operand, let offset):
                guard offset >= 0 else {
                    throw KilnError.invalidArgument("kernel argument \(index): negative pointer offset \(offset)")
                }
                let base = try resolve(operand)
                let (address, overflow) = base.addingReportingOverflow(UInt64(offset))
                guard !overflow else {
                    throw KilnError.invalidArgument("kernel argument \(index): address overflow")
                }
                append(address.littleEndian, alignment: 8)
            case .int32(let value): append(value.littleEndian, alignment: 4)
            case .int64(let value): append(value.littleEndian, alignment: 8)
            case .float32(let value): append(value.bitPattern.littleEndian, alignment: 4)
            case .float64(let value): append(value.bitPattern.littleEndian, alignment: 8)
            case .dims(let dims):
                guard dims.count <= CUDAPrelude.maxRank else {
                    throw KilnError.unsupported(
                        "kernel argument \(index): \(dims.count) dims exceed KilnDims' \(CUDAPrelude.maxRank)")
                }
                while bytes.count % 8 != 0 { bytes.append(0) }
                offsets.append(bytes.count)
                for i in 0..<CUDAPrelude.maxRank {
                    let value = i < dims.count ? Int64(dims[i]) : 0
                    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
                }
            case .tensorMap(let map):
                let encoded = try encode(map, try resolve(map.operand))
                guard encoded.count == 128 else {
                    throw KilnError.runtime("kernel argument \(index): a tensor map of \(encoded.count) bytes")
                }
                while bytes.count % 64 != 0 { bytes.append(0) }
                offsets.append(bytes.count)
                bytes.append(contentsOf: encoded)
            }
        }
        return Packed(bytes: bytes, offsets: offsets)
    }
}
