import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file mapped into memory copy-on-write: a plan's weights serve as tensor storage without being copied
/// (`EnginePlan(contentsOf:)`), and an ONNX model's weights are read from it once (`ONNXImporter`). The mapping
/// lives as long as the last tensor that points into it.
///
/// The file must not be truncated or rewritten in place while it is mapped (as with any mapped file, the
/// process would fault); `kiln build` and `kiln refit` replace a plan file atomically, which is safe.
public final class MappedFile: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    /// Maps `url`, or nil where it cannot be mapped (an empty file, a file system without mmap): the caller
    /// reads the file instead.
    public init?(_ url: URL) {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size > 0, let size = Int(exactly: status.st_size) else {
            return nil
        }
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, descriptor, 0)
        guard let mapped, mapped != MAP_FAILED else { return nil }
        base = mapped
        count = size
    }

    deinit { munmap(base, count) }

    /// The whole file as `Data` that borrows the mapping (valid while this object lives).
    public var bytes: Data { Data(bytesNoCopy: base, count: count, deallocator: .none) }

    /// Storage for the `byteCount` bytes at `offset` in the file, keeping the mapping alive.
    public func storage(offset: Int, byteCount: Int) -> TensorStorage {
        TensorStorage(bytes: base + offset, byteCount: byteCount, release: { _ in withExtendedLifetime(self) {} })
    }

    /// Gives back the memory of the whole pages inside `range` (bytes read and not needed again): they leave
    /// the process's resident memory, and would be read from the file again if touched.
    public func release(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = (range.lowerBound + page - 1) / page * page
        let end = min(range.upperBound, count) / page * page
        guard end > start else { return }
        _ = madvise(base + start, end - start, MADV_DONTNEED)
    }
}
