import Foundation
import KilnIR

/// libnvrtc: compiles CUDA C to a cubin for one GPU architecture, at engine build time (no GPU needed).
public final class NVRTC: @unchecked Sendable {
    typealias Result = Int32
    typealias Version = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Result
    typealias ErrorString = @convention(c) (Result) -> UnsafePointer<CChar>?
    typealias CreateProgram =
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> Result
    typealias DestroyProgram = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Result
    typealias CompileProgram = @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    typealias GetSize = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Result
    typealias GetBytes = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Result

    let library: DynamicLibrary
    /// The NVRTC release, e.g. (13, 0).
    public let version: (major: Int, minor: Int)
    private let nvrtcGetErrorString: ErrorString
    private let nvrtcCreateProgram: CreateProgram
    private let nvrtcDestroyProgram: DestroyProgram
    private let nvrtcCompileProgram: CompileProgram
    private let nvrtcGetCUBINSize: GetSize
    private let nvrtcGetCUBIN: GetBytes
    private let nvrtcGetProgramLogSize: GetSize
    private let nvrtcGetProgramLog: GetBytes

    /// Lines of compiler log kept in an error message.
    static let logLines = 40

    private init(library: DynamicLibrary) throws {
        self.library = library
        let nvrtcVersion: Version = try library.function("nvrtcVersion")
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        var major: Int32 = 0
        var minor: Int32 = 0
        let result = nvrtcVersion(&major, &minor)
        guard result == 0 else { throw KilnError.runtime("nvrtcVersion failed with NVRTC error \(result)") }
        version = (Int(major), Int(minor))
    }

    private static let loaded: Swift.Result<NVRTC, KilnError> = {
        if ProcessInfo.processInfo.environment["KILN_NVRTC"] == "off" {
            return .failure(KilnError.unsupported("NVRTC is turned off (KILN_NVRTC=off)"))
        }
        do {
            let library = try DynamicLibrary.open(
                ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], what: "NVRTC", shownAs: "libnvrtc.so")
            return .success(try NVRTC(library: library))
        } catch let error as KilnError {
            return .failure(error)
        } catch {
            return .failure(KilnError.runtime("loading NVRTC: \(error)"))
        }
    }()

    /// The process's NVRTC, loaded on first use (`KILN_CUDA_LIBS` first, then the system's folders); throws
    /// `unsupported("no NVRTC found (libnvrtc.so)")` when absent (the failure is cached too), and when
    /// `KILN_NVRTC=off` says to act as a machine without it (what a plan must run on).
    public static func shared() throws -> NVRTC {
        try loaded.get()
    }

    /// The options every Kiln kernel is compiled with for `sm_<architecture>` (e.g. 90). NVRTC optimizes device
    /// code fully by default; fast math stays off so results match the CPU reference.
    public static func options(architecture: String) -> [String] {
        ["--gpu-architecture=\(architecture)", "-default-device", "--std=c++17"]
    }

    /// Compiles `CUDAPrelude.text + source.code` to a cubin for `sm_<architecture>` (90 on Hopper; `sm_90a` for
    /// an architecture-specific source). On failure
    /// throws `KilnError(.runtime)` naming `source.name`, with the first lines of the compiler log; log line
    /// numbers are those of `source.code` (the prelude is excluded by a `#line` directive).
    public func compile(_ source: CUDASource, architecture: Int) throws -> [UInt8] {
        guard architecture > 0 else { throw KilnError.invalidArgument("invalid GPU architecture \(architecture)") }
        return try compile(source, gpuArchitecture: "sm_\(architecture)\(source.architectureSpecific ? "a" : "")")
    }

    /// `compile` for an architecture name such as "sm_90a" (needed for wgmma), with `extraOptions` appended.
    public func compile(_ source: CUDASource, gpuArchitecture: String, extraOptions: [String] = []) throws -> [UInt8] {
        let fileName = source.name + ".cu"
        let escapedName = fileName.replacingOccurrences(of: "\\", with: "_").replacingOccurrences(of: "\"", with: "_")
        let text = CUDAPrelude.text + "\n#line 1 \"\(escapedName)\"\n" + source.code
        var program: OpaquePointer?
        try check(nvrtcCreateProgram(&program, text, fileName, 0, nil, nil), "nvrtcCreateProgram", source)
        guard let created = program else { throw KilnError.runtime("nvrtcCreateProgram returned no program") }
        defer { _ = nvrtcDestroyProgram(&program) }

        let options = Self.options(architecture: gpuArchitecture) + extraOptions
        let result = withCStrings(options) { pointers in
            pointers.withUnsafeBufferPointer { nvrtcCompileProgram(created, Int32(options.count), $0.baseAddress) }
        }
        guard result == 0 else {
            let log = (try? self.log(of: created)) ?? "(no log)"
            throw KilnError.runtime(
                "NVRTC could not compile '\(source.name)' for \(gpuArchitecture) (\(describe(result))):\n"
                    + Self.firstLines(log, Self.logLines))
        }
        var size = 0
        try check(nvrtcGetCUBINSize(created, &size), "nvrtcGetCUBINSize", source)
        guard size > 0 else { throw KilnError.runtime("NVRTC produced an empty cubin for '\(source.name)'") }
        var cubin = [UInt8](repeating: 0, count: size)
        let copied = cubin.withUnsafeMutableBytes { raw in
            nvrtcGetCUBIN(created, raw.baseAddress?.assumingMemoryBound(to: CChar.self))
        }
        try check(copied, "nvrtcGetCUBIN", source)
        return cubin
    }

    private func log(of program: OpaquePointer) throws -> String {
        var size = 0
        guard nvrtcGetProgramLogSize(program, &size) == 0, size > 0 else { return "" }
        var buffer = [CChar](repeating: 0, count: size + 1)
        guard nvrtcGetProgramLog(program, &buffer) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func firstLines(_ text: String, _ count: Int) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let kept = lines.prefix(count).joined(separator: "\n")
        return lines.count > count ? kept + "\n... (\(lines.count - count) more lines)" : kept
    }

    private func describe(_ result: Result) -> String {
        nvrtcGetErrorString(result).map { String(cString: $0) } ?? "NVRTC error \(result)"
    }

    private func check(_ result: Result, _ function: String, _ source: CUDASource) throws {
        guard result == 0 else {
            throw KilnError.runtime("\(function) failed for '\(source.name)': \(describe(result))")
        }
    }
}

/// Calls `body` with NUL-terminated copies of `strings` that live for the call.
func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) throws -> R) rethrows -> R {
    let copies = strings.map { strdup($0) }
    defer { for copy in copies { free(copy) } }
    return try body(copies.map { $0.map { UnsafePointer($0) } })
}
