import Foundation
import KilnIR
import SwiftProtobuf

// The file: "KILN", format version (u32), header length (u64), PlanHeader, body length (u64), PlanBody, zero
// padding to a 64-byte boundary, the data section (weights and code blobs, each 64-byte aligned, offsets
// relative to the section), and the FNV-1a 64 checksum of everything before it (u64). Integers are
// little-endian. Nothing in it depends on time or on the process, so equal builds give equal bytes.

extension EnginePlan {
    static let magic: [UInt8] = Array("KILN".utf8)
    static let alignment = 64

    /// The plan as file bytes.
    public func encoded() throws -> Data {
        var file = Data()
        try emit { file.append(contentsOf: $0) }
        return file
    }

    /// Writes the plan to `url` piece by piece, each weight straight from its storage, so the file's bytes are
    /// never assembled in memory. The file is written beside `url` and renamed into place: it appears whole
    /// or not at all, and a process that has the old file mapped keeps reading the old one.
    public func write(to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).partial")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporary.path)
        else { throw KilnError.io("\(url.path): cannot write: its folder is missing or not writable") }
        do {
            defer { try? handle.close() }
            try emit { bytes in
                guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
                try handle.write(
                    contentsOf: Data(
                        bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count,
                        deallocator: .none))
            }
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw KilnError.io("\(url.path): cannot write: \(error.localizedDescription)")
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw KilnError.io("\(url.path): cannot replace it: \(reason)")
        }
    }

    /// A piece of the data section: a weight's stored bytes (read in place) or bytes made for the file.
    private enum Blob {
        case tensor(Tensor)
        case bytes(Data)

        /// A weight as stored: its raw elements, or the JSON list of a string tensor's elements.
        init(_ tensor: Tensor) throws {
            self = tensor.dtype == .string ? .bytes(try PlanCoding.json(tensor.strings)) : .tensor(tensor)
        }

        var count: Int {
            switch self {
            case .tensor(let t): t.byteCount
            case .bytes(let d): d.count
            }
        }

        func withBytes(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
            switch self {
            case .tensor(let t): try body(UnsafeRawBufferPointer(start: t.storage.bytes, count: t.byteCount))
            case .bytes(let d): try d.withUnsafeBytes(body)
            }
        }
    }

    /// The file's bytes in order, handed to `write` piece by piece; the checksum is computed on the way.
    private func emit(_ write: (UnsafeRawBufferPointer) throws -> Void) throws {
        var blobs: [Blob] = []
        var sectionBytes = 0
        /// Places a blob at the next aligned offset of the data section.
        func place(_ blob: Blob) -> (offset: UInt64, length: UInt64) {
            sectionBytes += DataSection.padding(sectionBytes)
            let offset = UInt64(sectionBytes)
            sectionBytes += blob.count
            blobs.append(blob)
            return (offset, UInt64(blob.count))
        }
        var body = Kiln_Plan_PlanBody()
        body.graphName = graph.name
        body.inputs = try graph.inputs.map { try PlanCoding.namedType($0.name, $0.type) }
        body.outputs = try graph.outputs.map { try PlanCoding.namedType($0.name, $0.type) }
        body.valueTypes = try graph.valueTypes.sorted { $0.key < $1.key }.map {
            try PlanCoding.namedType($0.key, $0.value)
        }
        body.nodes = try graph.nodes.map { node in
            try withErrorContext("node '\(node.name)'") {
                var entry = Kiln_Plan_PlanNode()
                entry.name = node.name
                entry.kind = node.kind.name
                entry.inputs = node.inputs
                entry.outputs = node.outputs
                entry.layer = try PlanCoding.json(node.layer)
                return entry
            }
        }
        for (name, tensor) in graph.initializers.sorted(by: { $0.key < $1.key }) {
            var section = Kiln_Plan_Section()
            section.name = name
            section.dtype = Int32(tensor.dtype.rawValue)
            section.shape = tensor.shape.map(Int64.init)
            (section.offset, section.length) = place(try Blob(tensor))
            body.weights.append(section)
        }
        for code in code.sorted(by: { $0.name < $1.name }) {
            var section = Kiln_Plan_Section()
            section.name = code.name
            (section.offset, section.length) = place(.bytes(Data(code.bytes)))
            body.code.append(section)
        }

        body.memory = memory.map { report in
            var entry = Kiln_Plan_MemoryReport()
            entry.shapes = report.shapes.map(PlanCoding.inputShape)
            entry.weightBytes = UInt64(report.weightBytes)
            entry.activationBytes = UInt64(report.activationBytes)
            entry.naiveActivationBytes = UInt64(report.naiveActivationBytes)
            entry.workspaceBytes = UInt64(report.workspaceBytes)
            entry.launches = UInt64(report.launches)
            return entry
        }

        body.tactics = tactics.sorted { $0.key < $1.key }.map { signature, choice in
            var entry = Kiln_Plan_Tactic()
            entry.signature = signature
            entry.choice = choice
            return entry
        }

        if let precision { body.precision = try PlanCoding.encoder().encode(precision) }

        var hash = StableHash()
        func put(_ bytes: UnsafeRawBufferPointer) throws {
            hash.combine(bytes)
            try write(bytes)
        }
        var prefix = Data(Self.magic)
        prefix.appendInteger(Self.formatVersion)
        let header = try headerMessage.serializedData()
        prefix.appendInteger(UInt64(header.count))
        prefix.append(header)
        let bodyBytes = try body.serializedData()
        prefix.appendInteger(UInt64(bodyBytes.count))
        prefix.append(bodyBytes)
        prefix.append(Data(count: DataSection.padding(prefix.count)))
        try prefix.withUnsafeBytes(put)
        var written = 0
        let zeros = Data(count: Self.alignment)
        for blob in blobs {
            let padding = DataSection.padding(written)
            try zeros.prefix(padding).withUnsafeBytes(put)
            try blob.withBytes(put)
            written += padding + blob.count
        }
        try Swift.withUnsafeBytes(of: hash.value.littleEndian) { try write($0) }
    }

    private var headerMessage: Kiln_Plan_PlanHeader {
        var header = Kiln_Plan_PlanHeader()
        header.kilnVersion = kilnVersion
        header.device.kind = device.kind
        header.device.name = device.name
        header.device.architecture = device.architecture
        header.device.software = device.software
        header.options.optimize = options.optimize
        header.options.disabledPasses = options.disabledPasses.sorted()
        header.options.tf32 = options.tf32
        header.options.allowCpuFallback = options.allowCPUFallback
        header.options.shapes = options.shapes.map(PlanCoding.inputShape)
        header.options.level = Int32(options.level)
        header.options.profiles = options.profiles.map { profile in
            var entry = Kiln_Plan_Profile()
            entry.inputs = profile.inputs.map { range in
                var input = Kiln_Plan_InputRange()
                input.name = range.name
                input.min = range.min.map(Int64.init)
                input.opt = range.opt.map(Int64.init)
                input.max = range.max.map(Int64.init)
                return input
            }
            return entry
        }
        return header
    }
}

/// The data section's layout: blobs at aligned offsets from its start.
enum DataSection {
    static func padding(_ count: Int) -> Int {
        (EnginePlan.alignment - count % EnginePlan.alignment) % EnginePlan.alignment
    }
}

/// The IR values the protobuf schema stores as JSON.
enum PlanCoding {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    static func inputShape(_ shape: BuildOptions.InputShape) -> Kiln_Plan_InputShape {
        var entry = Kiln_Plan_InputShape()
        entry.name = shape.name
        entry.dims = shape.dims.map(Int64.init)
        return entry
    }

    static func json(_ value: some Encodable) throws -> Data { try encoder().encode(value) }

    static func namedType(_ name: String, _ type: ValueType?) throws -> Kiln_Plan_NamedType {
        var entry = Kiln_Plan_NamedType()
        entry.name = name
        if let type { entry.type = try json(type) }
        return entry
    }

}

extension Data {
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension EnginePlan {
    /// Reads the plan file at `url`. Its weights stay in the file's pages (mapped copy-on-write) instead of
    /// being copied; where the file cannot be mapped it is read. Errors as `init(decoding:)`.
    public init(contentsOf url: URL) throws {
        if let mapped = MappedFile(url) {
            try self.init(decoding: mapped.bytes, mapping: mapped)
            return
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KilnError.io("cannot read: \(error.localizedDescription)")
        }
        try self.init(decoding: data)
    }
}
