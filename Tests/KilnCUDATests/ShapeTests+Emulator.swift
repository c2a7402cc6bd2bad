import Foundation
import KilnIR

@testable import KilnCUDA

/// Runs a data-movement `CUDALowering` on byte arrays: each kernel's loop body transcribed to Swift from the
/// CUDA C in `CUDAShapeKernels` / `CUDAIndexingLowerings`, so the tests check the argument and index math a
/// GPU would run. It also checks launch limits (block <= 1024 threads, grid within CUDA's bounds).
enum ShapeEmulator {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func run(_ lowering: CUDALowering, inputs: [[UInt8]], outputSizes: [Int]) throws -> [[UInt8]] {
        var outputs = outputSizes.map { [UInt8](repeating: 0xEE, count: $0) }
        // A view: the output's bytes from where it starts inside the input's.
        for (o, i) in lowering.aliases {
            let start = lowering.aliasOffsets[o] ?? 0
            guard start >= 0, start + outputSizes[o] <= inputs[i].count else {
                throw Failure(description: "view of bytes \(start)..<\(start + outputSizes[o]) of \(inputs[i].count)")
            }
            outputs[o] = Array(inputs[i][start..<(start + outputSizes[o])])
        }
        let constants = lowering.constants.map { t in t.withUnsafeRawBytes { Array($0) } }
        func read(_ operand: CUDAOperand) throws -> [UInt8] {
            switch operand {
            case .input(let i): return inputs[i]
            case .output(let i): return outputs[i]
            case .constant(let i): return constants[i]
            case .scratch: throw Failure(description: "data movement uses no scratch")
            }
        }
        for step in lowering.steps {
            switch step {
            case .copy(let c):
                guard case .output(let o) = c.destination else {
                    throw Failure(description: "copy into \(c.destination)")
                }
                let src = try read(c.source)
                guard c.sourceOffset >= 0, c.sourceOffset + c.bytes <= src.count,
                    c.destinationOffset + c.bytes <= outputs[o].count
                else { throw Failure(description: "copy out of bounds: \(c)") }
                outputs[o].replaceSubrange(
                    c.destinationOffset..<(c.destinationOffset + c.bytes),
                    with: src[c.sourceOffset..<(c.sourceOffset + c.bytes)])
            case .launch(let l):
                try checkLimits(l)
                var args = Arguments(launch: l)
                guard case .output(let o) = try args.pointer() else { throw Failure(description: "launch target") }
                try kernel(l, &args, &outputs[o], read)
            default: throw Failure(description: "unexpected step \(step)")
            }
        }
        return outputs
    }

    static func checkLimits(_ l: CUDALaunch) throws {
        let threads = l.block.x * l.block.y * l.block.z
        guard threads >= 1, threads <= 1024, l.grid.x >= 1, l.grid.x < 1 << 31, l.grid.y >= 1, l.grid.y <= 65535,
            l.grid.z >= 1, l.grid.z <= 65535, l.sharedBytes <= 48 * 1024
        else { throw Failure(description: "launch limits: \(l.grid) x \(l.block)") }
        for case .dims(let d) in l.arguments where d.count > CUDAPrelude.maxRank {
            throw Failure(description: "dims \(d) too long")
        }
    }

    /// Reads a launch's arguments in order.
    struct Arguments {
        let launch: CUDALaunch
        var next = 0
        mutating func take() throws -> CUDAArgument {
            guard next < launch.arguments.count else { throw Failure(description: "\(launch.function): few arguments") }
            defer { next += 1 }
            return launch.arguments[next]
        }
        mutating func pointer() throws -> CUDAOperand {
            guard case .pointer(let op, 0) = try take() else { throw Failure(description: "expected a pointer") }
            return op
        }
        mutating func int() throws -> Int {
            switch try take() {
            case .int64(let v): return Int(v)
            case .int32(let v): return Int(v)
            default: throw Failure(description: "expected an integer")
            }
        }
        mutating func dims() throws -> [Int] {
            guard case .dims(let d) = try take() else { throw Failure(description: "expected dims") }
            return d + Array(repeating: 0, count: CUDAPrelude.maxRank - d.count)
        }
    }

    /// The number after `_<letter>` in a kernel name (`_u16`, `_r3`, `_b2`).
    static func field(_ name: String, _ letter: Character) throws -> Int {
        for part in name.split(separator: "_") where part.first == letter {
            if let v = Int(part.dropFirst()) { return v }
        }
        throw Failure(description: "\(name) has no \(letter) field")
    }

    static func copyUnit(_ dst: inout [UInt8], _ di: Int, _ src: [UInt8], _ si: Int, _ u: Int) throws {
        guard di >= 0, (di + 1) * u <= dst.count, si >= 0, (si + 1) * u <= src.count else {
            throw Failure(description: "unit access out of bounds: dst \(di) src \(si) unit \(u)")
        }
        for b in 0..<u { dst[di * u + b] = src[si * u + b] }
    }

    static func store(_ dst: inout [UInt8], _ di: Int, bits: UInt64, _ u: Int) throws {
        guard di >= 0, (di + 1) * u <= dst.count else { throw Failure(description: "store out of bounds") }
        for b in 0..<u { dst[di * u + b] = b < 8 ? UInt8(truncatingIfNeeded: bits >> (8 * UInt64(b))) : 0 }
    }

    static func index(_ bytes: [UInt8], _ k: Int, wide: Bool) -> Int {
        let size = wide ? 8 : 4
        var v: UInt64 = 0
        for b in 0..<size { v |= UInt64(bytes[k * size + b]) << (8 * UInt64(b)) }
        return wide ? Int(Int64(bitPattern: v)) : Int(Int32(truncatingIfNeeded: v))
    }

    static func kernel(
        _ l: CUDALaunch, _ a: inout Arguments, _ out: inout [UInt8], _ read: (CUDAOperand) throws -> [UInt8]
    ) throws {
        let name = l.function
        let u = try field(name, "u")
        if name.hasPrefix("kiln_strided_") {
            let rank = try field(name, "r")
            let src = try read(try a.pointer())
            let (count, offset, sizes, strides) = (try a.int(), try a.int(), try a.dims(), try a.dims())
            for i in 0..<count {
                var rem = i
                var s = offset
                for d in stride(from: rank - 1, to: 0, by: -1) {
                    s += (rem % sizes[d]) * strides[d]
                    rem /= sizes[d]
                }
                s += rem * strides[0]
                try copyUnit(&out, i, src, s, u)
            }
        } else if name.hasPrefix("kiln_transpose_narrow_") {
            let b = try field(name, "b")
            let src = try read(try a.pointer())
            let (rows, cols, colStride, rowStride, offset) = (
                try a.int(), try a.int(), try a.int(), try a.int(), try a.int()
            )
            let (sizes, bsrc, bdst, total) = (try a.dims(), try a.dims(), try a.dims(), try a.int())
            for i in 0..<total {
                var rest = i / rows
                let r = i % rows
                var (s, o) = (offset + r, r * rowStride)
                for d in stride(from: b - 1, through: 0, by: -1) {
                    s += (rest % sizes[d]) * bsrc[d]
                    o += (rest % sizes[d]) * bdst[d]
                    rest /= sizes[d]
                }
                for c in 0..<cols { try copyUnit(&out, o + c, src, s + c * colStride, u) }
            }
        } else if name.hasPrefix("kiln_transpose_") {
            let b = try field(name, "b")
            let src = try read(try a.pointer())
            let (rows, cols, colStride, rowStride, offset) = (
                try a.int(), try a.int(), try a.int(), try a.int(), try a.int()
            )
            let (sizes, bsrc, bdst, tiles) = (try a.dims(), try a.dims(), try a.dims(), try a.int())
            let (rowTiles, colTiles) = ((rows + 31) / 32, (cols + 31) / 32)
            for t in 0..<tiles {
                var rest = t / colTiles
                let (ct, rt) = (t % colTiles, rest % rowTiles)
                rest /= rowTiles
                var (s, o) = (offset, 0)
                for d in stride(from: b - 1, through: 0, by: -1) {
                    s += (rest % sizes[d]) * bsrc[d]
                    o += (rest % sizes[d]) * bdst[d]
                    rest /= sizes[d]
                }
                for r in (rt * 32)..<min(rt * 32 + 32, rows) {
                    for c in (ct * 32)..<min(ct * 32 + 32, cols) {
                        try copyUnit(&out, o + r * rowStride + c, src, s + r + c * colStride, u)
                    }
                }
            }
        } else if name.hasPrefix("kiln_concat_") {
            let sources = try (0..<CUDAShapeKernels.concatInputs).map { _ in try read(try a.pointer()) }
            let (ends, starts, parts) = (try a.dims(), try a.dims(), try a.int())
            let (rows, rowUnits, groupUnits) = (try a.int(), try a.int(), try a.int())
            for i in 0..<(rows * groupUnits) {
                let (row, c) = (i / groupUnits, i % groupUnits)
                var (j, start) = (0, 0)
                for k in 0..<(CUDAShapeKernels.concatInputs - 1) where k + 1 < parts && c >= ends[k] {
                    (j, start) = (k + 1, ends[k])
                }
                try copyUnit(
                    &out, row * rowUnits + starts[j] + c - start, sources[j], row * (ends[j] - start) + c - start, u)
            }
        } else if name.hasPrefix("kiln_pad_") {
            let rank = try field(name, "r")
            let src = try read(try a.pointer())
            let (count, outSizes, inSizes, begins, inStrides) = (
                try a.int(), try a.dims(), try a.dims(), try a.dims(), try a.dims()
            )
            let bits = UInt64(bitPattern: Int64(try a.int()))
            for i in 0..<count {
                var (rem, s, inside) = (i, 0, true)
                for d in stride(from: rank - 1, through: 0, by: -1) {
                    var x = rem % outSizes[d] - begins[d]
                    rem /= outSizes[d]
                    let n = inSizes[d]
                    if name.hasPrefix("kiln_pad_constant") {
                        if x < 0 || x >= n { inside = false }
                    } else if name.hasPrefix("kiln_pad_edge") {
                        x = min(max(x, 0), n - 1)
                    } else if name.hasPrefix("kiln_pad_wrap") {
                        x = ((x % n) + n) % n
                    } else if n == 1 {
                        x = 0
                    } else {
                        let p = 2 * (n - 1)
                        x = ((x % p) + p) % p
                        if x >= n { x = p - x }
                    }
                    s += x * inStrides[d]
                }
                if inside { try copyUnit(&out, i, src, s, u) } else { try store(&out, i, bits: bits, u) }
            }
        } else if name.hasPrefix("kiln_fill_") {
            let count = try a.int()
            let bits = UInt64(bitPattern: Int64(try a.int()))
            for i in 0..<count { try store(&out, i, bits: bits, u) }
        } else if name.hasPrefix("kiln_gather_elements_") {
            let rank = try field(name, "r")
            let wide = name.hasSuffix("_i64")
            let (data, indices) = (try read(try a.pointer()), try read(try a.pointer()))
            let (count, sizes, strides, axis, length) = (
                try a.int(), try a.dims(), try a.dims(), try a.int(), try a.int()
            )
            for i in 0..<count {
                var (rem, s, inside) = (i, 0, true)
                for d in stride(from: rank - 1, through: 0, by: -1) {
                    var c = rem % sizes[d]
                    rem /= sizes[d]
                    if d == axis {
                        c = index(indices, i, wide: wide)
                        if c < 0 { c += length }
                        if c < 0 || c >= length { inside = false }
                    }
                    s += c * strides[d]
                }
                if inside { try copyUnit(&out, i, data, s, u) } else { try store(&out, i, bits: 0, u) }
            }
        } else if name.hasPrefix("kiln_gather_") {
            let wide = name.hasSuffix("_i64")
            let (data, indices) = (try read(try a.pointer()), try read(try a.pointer()))
            let (outer, count, inner, length) = (try a.int(), try a.int(), try a.int(), try a.int())
            for i in 0..<(outer * count * inner) {
                let (r, c) = (i / inner, i % inner)
                let (o, k) = (r / count, r % count)
                var v = index(indices, k, wide: wide)
                if v < 0 { v += length }
                if v >= 0 && v < length {
                    try copyUnit(&out, i, data, (o * length + v) * inner + c, u)
                } else {
                    try store(&out, i, bits: 0, u)
                }
            }
        } else {
            throw Failure(description: "no emulation of \(name)")
        }
        guard a.next == l.arguments.count else { throw Failure(description: "\(name): extra arguments") }
    }
}
