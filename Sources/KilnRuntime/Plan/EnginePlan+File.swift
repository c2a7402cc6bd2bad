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
        var data = DataSection()
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
            (section.offset, section.length) = try data.append(PlanCoding.bytes(of: tensor))
            body.weights.append(section)
        }
        for blob in code.sorted(by: { $0.name < $1.name }) {
            var section = Kiln_Plan_Section()
            section.name = blob.name
            (section.offset, section.length) = data.append(Data(blob.bytes))
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

        var file = Data(Self.magic)
        file.appendInteger(Self.formatVersion)
        let header = try headerMessage.serializedData()
        file.appendInteger(UInt64(header.count))
        file.append(header)
        let bodyBytes = try body.serializedData()
        file.appendInteger(UInt64(bodyBytes.count))
        file.append(bodyBytes)
        file.append(Data(count: DataSection.padding(file.count)))
        file.append(data.bytes)
        var hash = StableHash()
        file.withUnsafeBytes { hash.combine($0) }
        file.appendInteger(hash.value)
        return file
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

/// The data section being written: blobs at aligned offsets.
struct DataSection {
    var bytes = Data()

    static func padding(_ count: Int) -> Int {
        (EnginePlan.alignment - count % EnginePlan.alignment) % EnginePlan.alignment
    }

    mutating func append(_ blob: Data) -> (offset: UInt64, length: UInt64) {
        bytes.append(Data(count: Self.padding(bytes.count)))
        let offset = UInt64(bytes.count)
        bytes.append(blob)
        return (offset, UInt64(blob.count))
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

    /// A tensor's bytes as stored: raw elements, or the JSON list of a string tensor's elements.
    static func bytes(of tensor: Tensor) throws -> Data {
        if tensor.dtype == .string { return try json(tensor.strings) }
        return Data(bytes: tensor.storage.bytes, count: tensor.byteCount)
    }
}

extension Data {
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
