import Foundation
import KilnIR

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plan file mapped into memory copy-on-write, so that its weights serve as tensor storage without being
/// copied (`EnginePlan(contentsOf:)`). The mapping lives as long as the last tensor that points into it.
///
/// The file must not be truncated or rewritten in place while a plan mapped from it is in use (as with any
/// mapped file, the process would fault); `kiln build` and `kiln refit` replace a plan file atomically, which is
/// safe.
final class MappedPlanFile: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int

    /// Maps `url`, or nil where it cannot be mapped (an empty file, a file system without mmap): the caller
    /// reads the file instead.
    init?(_ url: URL) {
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
    var bytes: Data { Data(bytesNoCopy: base, count: count, deallocator: .none) }

    /// Storage for the `byteCount` bytes at `offset` in the file, keeping the mapping alive.
    func storage(offset: Int, byteCount: Int) -> TensorStorage {
        TensorStorage(bytes: base + offset, byteCount: byteCount, release: { _ in withExtendedLifetime(self) {} })
    }
}

extension EnginePlan {
    /// Reads the plan file at `url`. Its weights stay in the file's pages (mapped copy-on-write) instead of
    /// being copied; where the file cannot be mapped it is read. Errors as `init(decoding:)`.
    public init(contentsOf url: URL) throws {
        if let mapped = MappedPlanFile(url) {
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
