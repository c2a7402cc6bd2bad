#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import KilnIR
import Testing

@testable import KilnCUDA

/// Compiles every data-movement kernel variant the lowerings can emit with NVRTC for sm_90 (no GPU needed).
/// Without NVRTC the test records a known issue saying so instead of passing silently.
@Suite struct ShapeNVRTCTests {
    /// Every source the shape lowerings can produce.
    static var allSources: [CUDASource] {
        var sources: [CUDASource] = []
        for unit in CUDAShapeKernels.units {
            for rank in 1...CUDAPrelude.maxRank {
                sources.append(CUDAShapeKernels.strided(unit: unit, rank: rank, wide: false))
                sources.append(CUDAShapeKernels.strided(unit: unit, rank: rank, wide: true))
            }
            sources.append(CUDAShapeKernels.concat(unit: unit))
            for index in ["int", "long long"] {
                sources.append(CUDAIndexingLowerings.gatherSource(unit: unit, indexType: index))
            }
        }
        for unit in [1, 2, 4, 8] {
            sources.append(CUDAShapeKernels.fill(unit: unit))
            for batch in 0...(CUDAPrelude.maxRank - 2) {
                sources.append(CUDAShapeKernels.transpose(unit: unit, batchRank: batch))
            }
            for rank in 1...CUDAPrelude.maxRank {
                for mode in [PadLayer.Mode.constant, .edge, .wrap, .reflect] {
                    sources.append(CUDAShapeKernels.pad(unit: unit, rank: rank, mode: mode))
                }
                for index in ["int", "long long"] {
                    sources.append(CUDAIndexingLowerings.gatherElementsSource(unit: unit, rank: rank, indexType: index))
                }
            }
        }
        return sources
    }

    @Test func everyVariantCompilesForSM90() throws {
        let sources = Self.allSources
        #expect(Set(sources.map(\.name)).count == sources.count, "kernel names must identify their code")
        guard let nvrtc = NVRTC.load() else {
            withKnownIssue("NVRTC not found (set KILN_CUDA_LIBS): \(sources.count) shape kernels NOT compile-checked") {
                Issue.record("NVRTC missing")
            }
            return
        }
        if let dump = ProcessInfo.processInfo.environment["KILN_DUMP_CUDA"] {
            for s in sources {
                try (CUDAPrelude.text + s.code).write(toFile: "\(dump)/\(s.name).cu", atomically: true, encoding: .utf8)
            }
        }
        // Programs are independent, so compile them on every core (about 300 variants).
        let logs = Logs(count: sources.count)
        DispatchQueue.concurrentPerform(iterations: sources.count) { i in
            logs.set(i, nvrtc.compile(CUDAPrelude.text + sources[i].code, name: sources[i].name))
        }
        for (source, log) in zip(sources, logs.values) { #expect(log == nil, "\(source.name): \(log ?? "")") }
    }
}

/// Compile logs written from concurrent workers.
final class Logs: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ log: String?) { lock.withLock { storage[i] = log } }
    var values: [String?] { lock.withLock { storage } }
}

/// Just enough of NVRTC to compile a program and read its log.
struct NVRTC: @unchecked Sendable {
    typealias Create = @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Int32
    typealias Compile = @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    typealias LogSize = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    typealias Log = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    typealias Destroy = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32

    let create: Create
    let compileProgram: Compile
    let logSize: LogSize
    let log: Log
    let destroy: Destroy

    static func load() -> NVRTC? {
        let env = ProcessInfo.processInfo.environment
        var folders = (env["KILN_CUDA_LIBS"] ?? "").split(separator: ":").map(String.init)
        folders += ["/work/nvrtc/nvidia/cu13/lib", "/usr/local/cuda/lib64"]
        for folder in folders {
            for name in ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"] {
                guard let h = dlopen(folder + "/" + name, RTLD_NOW | RTLD_LOCAL),
                    let c = dlsym(h, "nvrtcCreateProgram"), let p = dlsym(h, "nvrtcCompileProgram"),
                    let s = dlsym(h, "nvrtcGetProgramLogSize"), let l = dlsym(h, "nvrtcGetProgramLog"),
                    let d = dlsym(h, "nvrtcDestroyProgram")
                else { continue }
                return NVRTC(
                    create: unsafeBitCast(c, to: Create.self), compileProgram: unsafeBitCast(p, to: Compile.self),
                    logSize: unsafeBitCast(s, to: LogSize.self), log: unsafeBitCast(l, to: Log.self),
                    destroy: unsafeBitCast(d, to: Destroy.self))
            }
        }
        return nil
    }

    /// nil on a clean compile (no warnings), else the status and log.
    func compile(_ code: String, name: String) -> String? {
        var program: OpaquePointer?
        guard create(&program, code, name, 0, nil, nil) == 0 else { return "nvrtcCreateProgram failed" }
        defer { _ = destroy(&program) }
        let options = ["--gpu-architecture=sm_90", "-default-device", "--std=c++17"]
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            compileProgram(program, Int32(options.count), $0.baseAddress)
        }
        var size = 0
        _ = logSize(program, &size)
        var buffer = [CChar](repeating: 0, count: max(size, 1))
        _ = log(program, &buffer)
        let text = String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
        if status == 0 && text.isEmpty { return nil }
        return "status \(status): \(text)"
    }
}
