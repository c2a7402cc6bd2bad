import Foundation
import KilnIR

/// An ONNX model file read so that its weights' bytes are held once rather than twice (the file's bytes and
/// the decoded message's copy of them, then the tensors): the file is mapped, a walk over the protobuf wire
/// format finds the raw bytes of the main graph's initializers (ModelProto field 7, GraphProto field 5,
/// TensorProto field 9), and what is decoded is a copy of the file without them. The importer then makes each
/// weight's tensor straight from the mapped bytes and gives their pages back (`weight(_:)`, `release(_:)`).
///
/// Where the file cannot be mapped or the walk meets anything it does not expect (a group, a repeated graph or
/// raw_data field, a length past the end), there is no `ModelFile` and the file is decoded as it is; decoding
/// then reports what is wrong with it.
struct ModelFile {
    let file: MappedFile
    /// The model without the main graph's initializers' raw_data.
    let stripped: Data
    /// The file range of each main-graph initializer's raw_data, by the initializer's index.
    let rawData: [Int: Range<Int>]

    init?(_ url: URL) {
        guard let file = MappedFile(url) else { return nil }
        var walk = Walk(base: UnsafeRawPointer(file.base))
        guard let stripped = walk.model(0..<file.count) else { return nil }
        self.file = file
        self.stripped = stripped
        rawData = walk.rawData
    }

    /// Initializer `index`'s raw bytes, borrowed from the mapping (nil when it has none).
    func weight(_ index: Int) -> Data? {
        rawData[index].map { Data(bytesNoCopy: file.base + $0.lowerBound, count: $0.count, deallocator: .none) }
    }

    /// Gives back the pages of initializer `index`'s raw bytes once its tensor holds a copy.
    func release(_ index: Int) {
        if let range = rawData[index] { file.release(range) }
    }
}

/// The wire-format walk: copies every field but the main graph's raw weights, re-encoding the lengths of the
/// messages that lose bytes.
private struct Walk {
    let base: UnsafeRawPointer
    var rawData: [Int: Range<Int>] = [:]

    /// One field of the message in `range` starting at `position`: its number, its whole range and, for a
    /// length-delimited field, its payload. nil past the end or for a malformed or group field.
    func field(at position: Int, in range: Range<Int>) -> (number: UInt64, whole: Range<Int>, payload: Range<Int>?)? {
        var at = position
        guard let tag = varint(&at, range) else { return nil }
        switch tag & 7 {
        case 0:
            guard varint(&at, range) != nil else { return nil }
        case 1, 5:
            let width = tag & 7 == 1 ? 8 : 4
            guard range.upperBound - at >= width else { return nil }
            at += width
        case 2:
            guard let n = varint(&at, range), n <= UInt64(range.upperBound - at) else { return nil }
            let payload = at..<(at + Int(n))
            return (tag >> 3, position..<payload.upperBound, payload)
        default:
            return nil
        }
        return (tag >> 3, position..<at, nil)
    }

    func varint(_ at: inout Int, _ range: Range<Int>) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: UInt64(0), to: 70, by: 7) {
            guard at < range.upperBound else { return nil }
            let byte = base.load(fromByteOffset: at, as: UInt8.self)
            at += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }

    /// The fields of the message in `range`, each given to `body` with the output to extend; false when a
    /// field is malformed or `body` refuses one.
    mutating func copy(
        _ range: Range<Int>, into out: inout Data,
        _ body: (inout Walk, _ number: UInt64, _ payload: Range<Int>?, _ out: inout Data) -> Bool?
    ) -> Bool {
        var position = range.lowerBound
        while position < range.upperBound {
            guard let f = field(at: position, in: range) else { return false }
            switch body(&self, f.number, f.payload, &out) {
            case .some(true): break
            case .some(false): return false
            case .none:
                out.append(base.assumingMemoryBound(to: UInt8.self) + f.whole.lowerBound, count: f.whole.count)
            }
            position = f.whole.upperBound
        }
        return true
    }

    /// A ModelProto without its graph's raw weights.
    mutating func model(_ range: Range<Int>) -> Data? {
        var out = Data()
        var graphs = 0
        let ok = copy(range, into: &out) { walk, number, payload, out in
            guard number == 7 else { return nil }
            graphs += 1
            guard let payload, graphs == 1, let graph = walk.graph(payload) else { return false }
            Self.append(field: 7, graph, to: &out)
            return true
        }
        return ok ? out : nil
    }

    private mutating func graph(_ range: Range<Int>) -> Data? {
        var out = Data()
        var index = 0
        let ok = copy(range, into: &out) { walk, number, payload, out in
            guard number == 5 else { return nil }
            guard let payload, let tensor = walk.tensor(payload, index: index) else { return false }
            index += 1
            Self.append(field: 5, tensor, to: &out)
            return true
        }
        return ok ? out : nil
    }

    private mutating func tensor(_ range: Range<Int>, index: Int) -> Data? {
        var out = Data()
        var found = false
        let ok = copy(range, into: &out) { walk, number, payload, _ in
            guard number == 9 else { return nil }
            guard let payload, !found else { return false }
            found = true
            walk.rawData[index] = payload
            return true
        }
        return ok ? out : nil
    }

    static func append(field: UInt64, _ payload: Data, to out: inout Data) {
        appendVarint(field << 3 | 2, to: &out)
        appendVarint(UInt64(payload.count), to: &out)
        out.append(payload)
    }

    static func appendVarint(_ value: UInt64, to out: inout Data) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
