import Foundation
import KilnIR
import SwiftProtobuf

extension EnginePlan {
    /// Reads a plan file's bytes. Every failure is an `invalidPlan` error saying what is wrong and what to do;
    /// no input makes it crash. The graph is not verified here (`Engine(plan:device:)` does).
    public init(decoding file: Data) throws { try self.init(decoding: file, mapping: nil) }

    /// Decodes `file`; with `mapping` (whose bytes `file` is), weights point into the mapping instead of being
    /// copied.
    init(decoding file: Data, mapping: MappedFile?) throws {
        var reader = PlanReader(file)
        guard try reader.bytes(4) == Data(Self.magic) else {
            throw KilnError.invalidPlan("not a Kiln plan (no KILN magic at the start)")
        }
        let version = try reader.integer(UInt32.self)
        guard version == Self.formatVersion else {
            throw KilnError.invalidPlan(
                "plan format version \(version); Kiln \(KilnVersion.string) reads version \(Self.formatVersion): "
                    + "rebuild the plan with `kiln build`")
        }
        guard file.count >= 8 else { throw KilnError.invalidPlan("the plan is truncated") }
        let stored = PlanReader(file.suffix(8)).littleEndian(UInt64.self)
        var hash = StableHash()
        // A mapped plan is hashed a chunk at a time and each chunk's pages go back once read, so checking it
        // does not bring the whole file into memory (a weight's pages are read again when it is used).
        let chunk = mapping == nil ? Int.max : 16 << 20
        file.prefix(file.count - 8).withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let end = offset + min(chunk, bytes.count - offset)
                hash.combine(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                mapping?.release(offset..<end)
                offset = end
            }
        }
        guard hash.value == stored else {
            throw KilnError.invalidPlan(
                "the plan is corrupt or truncated (checksum mismatch): rebuild it with `kiln build`")
        }
        let header = try Self.message(Kiln_Plan_PlanHeader.self, try reader.bytes(try reader.length()), "header")
        let body = try Self.message(Kiln_Plan_PlanBody.self, try reader.bytes(try reader.length()), "metadata")
        reader.skip(DataSection.padding(reader.position))
        let data = try reader.bytes(max(0, file.count - 8 - reader.position))

        kilnVersion = header.kilnVersion
        device = DeviceFingerprint(
            kind: header.device.kind, name: header.device.name, architecture: header.device.architecture,
            software: header.device.software)
        options = BuildOptions(
            optimize: header.options.optimize, disabledPasses: Set(header.options.disabledPasses),
            tf32: header.options.tf32, allowCPUFallback: header.options.allowCpuFallback,
            shapes: try header.options.shapes.map(Self.inputShape), level: Int(header.options.level))
        options.profiles = try header.options.profiles.map { entry in
            ShapeProfile(
                inputs: try entry.inputs.map { range in
                    ShapeProfile.Range(
                        name: range.name, min: try range.min.map(PlanReader.int),
                        opt: try range.opt.map(PlanReader.int),
                        max: try range.max.map(PlanReader.int))
                })
        }
        graph = try Self.graph(body, data: data, mapping: mapping)
        code = try body.code.map { section in
            CompiledCode(name: section.name, bytes: Array(try Self.slice(section, of: data)))
        }
        precision =
            body.precision.isEmpty
            ? nil
            : try Self.decoded("the precision report") {
                try PlanCoding.decoder().decode(PrecisionReport.self, from: body.precision)
            }
        tactics = Dictionary(body.tactics.map { ($0.signature, $0.choice) }, uniquingKeysWith: { first, _ in first })
        memory = try body.memory.map { entry in
            MemoryReport(
                shapes: try entry.shapes.map(Self.inputShape), weightBytes: try PlanReader.int(entry.weightBytes),
                activationBytes: try PlanReader.int(entry.activationBytes),
                naiveActivationBytes: try PlanReader.int(entry.naiveActivationBytes),
                workspaceBytes: try PlanReader.int(entry.workspaceBytes), launches: try PlanReader.int(entry.launches))
        }
    }

    private static func inputShape(_ entry: Kiln_Plan_InputShape) throws -> BuildOptions.InputShape {
        BuildOptions.InputShape(name: entry.name, dims: try entry.dims.map(PlanReader.int))
    }

    /// Whether `file` starts like a plan (to tell plans from ONNX files).
    public static func looksLikePlan(_ file: Data) -> Bool { file.prefix(4) == Data(magic) }

    private static func message<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: Data, _ what: String) throws -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw KilnError.invalidPlan("the plan's \(what) does not decode (\(error)): rebuild it with `kiln build`")
        }
    }

    private static func graph(_ body: Kiln_Plan_PlanBody, data: Data, mapping: MappedFile?) throws -> Graph {
        let decoder = PlanCoding.decoder()
        func type(_ entry: Kiln_Plan_NamedType) throws -> ValueType? {
            guard !entry.type.isEmpty else { return nil }
            return try decoded("the type of '\(entry.name)'") { try decoder.decode(ValueType.self, from: entry.type) }
        }
        var graph = Graph(name: body.graphName)
        graph.inputs = try body.inputs.map { GraphValue(name: $0.name, type: try type($0)) }
        graph.outputs = try body.outputs.map { GraphValue(name: $0.name, type: try type($0)) }
        for entry in body.valueTypes { graph.valueTypes[entry.name] = try type(entry) }
        graph.nodes = try body.nodes.map { entry in
            guard let layerType = LayerRegistry.byKind[entry.kind] else {
                throw KilnError.invalidPlan(
                    "node '\(entry.name)' has layer kind '\(entry.kind)', which this Kiln does not know: "
                        + "rebuild the plan with this version")
            }
            let layer = try decoded("the parameters of node '\(entry.name)' (\(entry.kind))") {
                try decoder.decode(layerType, from: entry.layer)
            }
            return Node(name: entry.name, layer: layer, inputs: entry.inputs, outputs: entry.outputs)
        }
        for section in body.weights {
            graph.initializers[section.name] = try decoded("weight '\(section.name)'") {
                try tensor(section, data: data, decoder: decoder, mapping: mapping)
            }
        }
        return graph
    }

    private static func tensor(
        _ section: Kiln_Plan_Section, data: Data, decoder: JSONDecoder, mapping: MappedFile?
    ) throws -> Tensor {
        guard let dtype = DType(rawValue: Int(section.dtype)) else {
            throw KilnError.invalidPlan("unknown dtype \(section.dtype)")
        }
        let shape = try section.shape.map(PlanReader.int)
        let bytes = try slice(section, of: data)
        if dtype == .string {
            let strings = try decoder.decode([String].self, from: bytes)
            guard strings.count == (try ShapeAxes.checkedCount(shape)) else {
                throw KilnError.invalidPlan("\(strings.count) strings for shape \(shape)")
            }
            return Tensor(shape: shape, strings: strings)
        }
        let count = try ShapeAxes.checkedCount(shape)
        // `bytes` is a slice of the mapped file, so its indices are offsets in the file; sections are 64-byte
        // aligned there, and a plan whose are not is copied.
        if let mapping, bytes.startIndex % EnginePlan.alignment == 0, bytes.count == count * dtype.byteSize {
            return Tensor(
                dtype: dtype, shape: shape, storage: mapping.storage(offset: bytes.startIndex, byteCount: bytes.count))
        }
        return try bytes.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, rawBytes: $0) }
    }

    private static func slice(_ section: Kiln_Plan_Section, of data: Data) throws -> Data {
        let (end, overflow) = section.offset.addingReportingOverflow(section.length)
        guard !overflow, end <= UInt64(data.count) else {
            throw KilnError.invalidPlan("section '\(section.name)' lies outside the data section")
        }
        let start = data.startIndex + Int(section.offset)
        return data[start..<(start + Int(section.length))]
    }

    /// Runs `body`; any failure becomes an `invalidPlan` error about `what`.
    private static func decoded<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as KilnError {
            throw KilnError.invalidPlan("\(what): \(error.description)")
        } catch {
            throw KilnError.invalidPlan("\(what) does not decode: \(error)")
        }
    }
}

/// Reads a plan front to back; every read checks the bounds. Reads are slices of the file's bytes, not copies
/// (a plan's weights are most of it).
struct PlanReader {
    /// The bytes, indexed from 0.
    let data: Data
    private(set) var position = 0

    init(_ data: Data) { self.data = data.startIndex == 0 ? data : Data(data) }

    mutating func bytes(_ count: Int) throws -> Data {
        guard count >= 0, count <= data.count - position else { throw KilnError.invalidPlan("the plan is truncated") }
        defer { position += count }
        return data[position..<(position + count)]
    }

    mutating func skip(_ count: Int) { position = min(data.count, position + count) }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        PlanReader(try bytes(MemoryLayout<T>.size)).littleEndian(T.self)
    }

    /// A u64 length that must fit what is left.
    mutating func length() throws -> Int {
        let value = try integer(UInt64.self)
        // The last 8 bytes are the checksum, never part of a section.
        guard value <= UInt64(max(0, data.count - 8 - position)) else {
            throw KilnError.invalidPlan("the plan is truncated")
        }
        return Int(value)
    }

    /// The integer at the start of `data` (which holds at least its size).
    func littleEndian<T: FixedWidthInteger>(_ type: T.Type) -> T {
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { target in
            data.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(target.count))) }
        }
        return T(littleEndian: value)
    }

    static func int(_ value: Int64) throws -> Int {
        guard value >= 0 else { throw KilnError.invalidPlan("negative dimension \(value)") }
        return Int(value)
    }

    /// A byte count or count from the plan: at most 2^56, so that sums of a few never overflow.
    static func int(_ value: UInt64) throws -> Int {
        guard value <= 1 << 56, let int = Int(exactly: value) else {
            throw KilnError.invalidPlan("size \(value) is out of range")
        }
        return int
    }
}
