import Foundation
import KilnIR

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A shared library opened at run time, so Kiln needs no CUDA at link time: the same binary runs where no
/// GPU or driver is installed and says so.
final class DynamicLibrary: @unchecked Sendable {
    let name: String
    /// The file that was opened (a bare soname when the system loader found it).
    let path: String
    private let handle: UnsafeMutableRawPointer

    private init(name: String, path: String, handle: UnsafeMutableRawPointer) {
        self.name = name
        self.path = path
        self.handle = handle
    }

    /// Opens the first of `sonames` that loads, looking in `KILN_CUDA_LIBS` (a colon-separated list of
    /// folders) first, then wherever the system loader looks (`LD_LIBRARY_PATH`, `ld.so.conf`), then the
    /// usual CUDA folders. Throws `unsupported("no <what> found (<shownAs>)")` when none loads; `shownAs`
    /// defaults to the first soname.
    static func open(_ sonames: [String], what: String, shownAs: String? = nil) throws -> DynamicLibrary {
        let env = ProcessInfo.processInfo.environment
        let overrides = (env["KILN_CUDA_LIBS"] ?? "").split(separator: ":").map(String.init)
        var candidates: [String] = []
        for folder in overrides { candidates += sonames.map { folder + "/" + $0 } }
        candidates += sonames
        for folder in standardFolders { candidates += sonames.map { folder + "/" + $0 } }
        for path in candidates {
            if let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) {
                return DynamicLibrary(name: what, path: path, handle: handle)
            }
        }
        throw KilnError.unsupported("no \(what) found (\(shownAs ?? sonames.first ?? what))")
    }

    static let standardFolders = [
        "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/local/cuda/targets/sbsa-linux/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
        "/usr/local/nvidia/lib64", "/usr/lib64", "/usr/lib",
    ]

    /// The address of `symbol` as a C function of type `F`; throws naming the library when it is missing.
    func function<F>(_ symbol: String, as type: F.Type = F.self) throws -> F {
        guard let address = dlsym(handle, symbol) else {
            throw KilnError.unsupported("\(name) at \(path) lacks \(symbol)")
        }
        return unsafeBitCast(address, to: F.self)
    }

    /// nil when the library lacks `symbol` (functions only newer versions have).
    func optionalFunction<F>(_ symbol: String, as type: F.Type = F.self) -> F? {
        dlsym(handle, symbol).map { unsafeBitCast($0, to: F.self) }
    }
}
