import Foundation
import KilnIR
import Testing

@testable import KilnCUDA

#if canImport(Glibc)
    import Glibc
#endif

/// Whether this machine has a CUDA driver, found independently of the code under test.
private let driverInstalled: Bool = {
    guard let handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) else { return false }
    dlclose(handle)
    return true
}()

/// Whether NVRTC loads (set KILN_CUDA_LIBS=/work/nvrtc/nvidia/cu13/lib on the build machine). Tests that need
/// it are disabled by the `.enabled(if:)` trait when it does not; `nvrtcAvailabilityIsReported` prints why.
private let nvrtcLoads = (try? NVRTC.shared()) != nil

/// A kernel that reads every argument kind, so a wrong packing shows up as a wrong value.
private let probeSource = CUDASource(
    name: "driver_probe",
    code: """
        extern "C" __global__ void probe(float* y, const float* x, int a, long long n, float b, double c,
                                         KilnDims d) {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
                 i += (long long)gridDim.x * blockDim.x) {
                y[i] = kiln_sigmoid(0.0f) * x[i] * a + b + (float)c + (float)(d.v[0] + d.v[7]);
            }
        }
        """)

@Suite struct DriverTests {
    // MARK: Driver (real checks where libcuda.so.1 exists, the absence message elsewhere)

    @Test func contextOpensOrSaysNoDriver() throws {
        guard driverInstalled else {
            print("no libcuda.so.1 here: checking the absence error")
            let error = #expect(throws: KilnError.self) { try CUDAContext.open() }
            #expect(error?.description.contains("no CUDA driver found (libcuda.so.1)") == true)
            return
        }
        let context = try CUDAContext.open()
        print(
            "device: \(context.name), sm_\(context.computeCapability), \(context.multiprocessors) SMs, "
                + "\(context.totalMemory >> 20) MiB, driver \(context.driverVersion)")
        #expect(context.computeCapability >= 50)
        #expect(context.multiprocessors > 0)
        #expect(context.totalMemory > 0)
        let (free, total) = try context.memoryInfo()
        #expect(free > 0 && free <= total)

        let count = 1 << 20
        let bytes = count * 4
        let a = try context.allocate(bytes: bytes)
        let b = try context.allocate(bytes: bytes)
        #expect(a.address % 256 == 0 && b.address % 256 == 0)
        let pinned = try context.allocatePinned(bytes: bytes)
        let values = pinned.pointer.bindMemory(to: Float.self, capacity: count)
        for i in 0..<count { values[i] = Float(i) * 0.5 - 7 }
        let stream = try context.makeStream()
        try stream.fill(device: b.address, byte: 0xFF, bytes: bytes)
        try stream.copy(toDevice: a.address, from: pinned.pointer, bytes: bytes)
        try stream.copy(device: b.address, from: a.address, bytes: bytes - 64)
        try stream.fill(device: b.address + UInt64(bytes - 64), byte: 0, bytes: 64)
        let back = try download(count, from: b.address, on: stream)
        let copied = count - 16
        let wrong = (0..<copied).filter { back[$0] != Float($0) * 0.5 - 7 }.count
        #expect(wrong == 0, "\(wrong) of \(copied) copied floats differ")
        #expect(back[copied...].allSatisfy { $0 == 0 })

        let error = #expect(throws: KilnError.self) { try context.allocate(bytes: total * 4) }
        #expect(error?.description.contains("out of device memory allocating") == true)
        _ = try context.allocate(bytes: 0)
        try context.synchronize()
    }

    @Test(.enabled(if: driverInstalled && nvrtcLoads)) func kernelLaunchesAndGraphsRun() throws {
        let context = try CUDAContext.open()
        let cache = CUDAModuleCache(context: context)
        try cache.prepare([probeSource, probeSource])
        let function = try cache.module(for: probeSource).function("probe")
        #expect(cache.image(for: probeSource)?.isEmpty == false)
        let n = 100_000
        let x = try context.allocate(bytes: (n + 4) * 4)
        let y = try context.allocate(bytes: n * 4)
        let stream = try context.makeStream()
        let input = (0..<(n + 4)).map { Float($0 % 1000) }
        try upload(input, to: x.address, on: stream)
        let launch = try function.prepare(
            grid: CUDADim3(64), block: CUDADim3(256), sharedBytes: 0,
            arguments: [
                .pointer(.output(0)), .pointer(.input(0), offset: 16), .int32(2), .int64(Int64(n)), .float32(0.25),
                .float64(-1.5), .dims([10, 0, 0, 0, 0, 0, 0, 3]),
            ],
            resolve: { operand in operand == .output(0) ? y.address : x.address })
        let start = try context.makeEvent()
        let end = try context.makeEvent()
        try stream.record(start)
        try launch.enqueue(on: stream)
        try stream.record(end)
        var out = try download(n, from: y.address, on: stream)
        // 0.5 * x[i + 4] * 2 + 0.25 - 1.5 + 13
        let expected = (0..<n).map { Float(($0 + 4) % 1000) + 11.75 }
        // Every term is exact in float; the tolerance absorbs __expf; a misplaced argument is off by >= 0.25.
        #expect(worstDifference(out, expected) < 1e-3)
        #expect(try end.milliseconds(since: start) >= 0)

        try stream.fill(device: y.address, byte: 0, bytes: n * 4)
        try stream.synchronize()
        try stream.beginCapture()
        try launch.enqueue(on: stream)
        let graph = try stream.endCapture()
        try graph.launch(on: stream)
        try graph.launch(on: stream)
        out = try download(n, from: y.address, on: stream)
        #expect(worstDifference(out, expected) < 1e-3)
        try function.setMaxDynamicSharedMemory(64 * 1024)
    }

    // MARK: NVRTC (runs where libnvrtc loads)

    @Test func nvrtcAvailabilityIsReported() {
        if let nvrtc = try? NVRTC.shared() {
            print("NVRTC \(nvrtc.version.major).\(nvrtc.version.minor) from \(nvrtc.library.path)")
        } else {
            print("skipped: no NVRTC (libnvrtc.so) found; set KILN_CUDA_LIBS to its folder to run the NVRTC tests")
        }
    }

    @Test(.enabled(if: nvrtcLoads)) func compilesACubinForHopper() throws {
        let cubin = try NVRTC.shared().compile(probeSource, architecture: 90)
        #expect(cubin.count > 64)
        #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])
    }

    @Test(.enabled(if: nvrtcLoads)) func compileErrorsCarryTheLog() throws {
        let broken = CUDASource(
            name: "broken_kernel",
            code: "extern \"C\" __global__ void f(float* y) {\n    y[0] = undefined_thing;\n}\n")
        let error = #expect(throws: KilnError.self) { try NVRTC.shared().compile(broken, architecture: 90) }
        let text = error?.description ?? ""
        #expect(text.contains("broken_kernel"))
        #expect(text.contains("undefined_thing"))
        // The #line directive makes log lines count from the source's own first line.
        #expect(text.contains("broken_kernel.cu(2)"))
    }

    @Test(.enabled(if: nvrtcLoads)) func compilesInParallel() throws {
        let nvrtc = try NVRTC.shared()
        let sources = (0..<6).map { i in
            CUDASource(name: "par_\(i)", code: "extern \"C\" __global__ void k(float* y) { y[0] = \(i).0f; }\n")
        }
        let sizes = Mutex(count: sources.count)
        DispatchQueue.concurrentPerform(iterations: sources.count) { i in
            sizes.set(i, (try? nvrtc.compile(sources[i], architecture: 90).count) ?? 0)
        }
        #expect(sizes.values.allSatisfy { $0 > 0 })
    }

    // MARK: Argument packing and launch checks (pure, no GPU)

    @Test func packsArgumentsAtTheirCAlignment() throws {
        let packed = try KernelArgumentPacker.pack(
            [
                .int32(7), .pointer(.input(1), offset: 16), .float32(1.5), .dims([2, 3]), .int32(-1), .float64(2.5),
                .int64(-5), .float32(-0.0),
            ],
            resolve: { operand in
                #expect(operand == .input(1))
                return 0x7000_0000_0100
            })
        #expect(packed.offsets == [0, 8, 16, 24, 88, 96, 104, 112])
        #expect(packed.bytes.count == 116)
        func load<T>(_ offset: Int, _ type: T.Type) -> T {
            packed.bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        }
        #expect(load(0, Int32.self) == 7)
        #expect(Array(packed.bytes[4..<8]) == [0, 0, 0, 0])
        #expect(load(8, UInt64.self) == 0x7000_0000_0110)
        #expect(load(16, Float.self) == 1.5)
        #expect((0..<8).map { load(24 + 8 * $0, Int64.self) } == [2, 3, 0, 0, 0, 0, 0, 0])
        #expect(load(88, Int32.self) == -1)
        #expect(load(96, Double.self) == 2.5)
        #expect(load(104, Int64.self) == -5)
        #expect(load(112, UInt32.self) == 0x8000_0000)
    }

    @Test func rejectsMoreThanEightDimsAndBadOffsets() {
        #expect(throws: KilnError.self) {
            try KernelArgumentPacker.pack([.dims(Array(repeating: 1, count: 9))], resolve: { _ in 0 })
        }
        #expect(throws: KilnError.self) {
            try KernelArgumentPacker.pack([.pointer(.input(0), offset: -4)], resolve: { _ in 256 })
        }
        let packed = try? KernelArgumentPacker.pack([.dims(Array(1...8))], resolve: { _ in 0 })
        #expect(packed?.bytes.count == KernelArgumentPacker.dimsBytes)
    }

    @Test func resolveErrorsPropagate() {
        #expect(throws: KilnError.self) {
            try KernelArgumentPacker.pack([.pointer(.scratch(3))]) { _ in throw KilnError.runtime("no scratch 3") }
        }
    }

    @Test func launchSizesAreChecked() throws {
        try CUDAFunction.validate(
            grid: CUDADim3(Int(Int32.max), 65535, 65535), block: CUDADim3(32, 32),
            sharedBytes: 0, function: "ok")
        let bad: [(CUDADim3, CUDADim3)] = [
            (CUDADim3(Int(Int32.max) + 1), CUDADim3(1)), (CUDADim3(1, 65536), CUDADim3(1)),
            (CUDADim3(0), CUDADim3(1)), (CUDADim3(1), CUDADim3(1025)), (CUDADim3(1), CUDADim3(64, 32)),
            (CUDADim3(1), CUDADim3(1, 1, 65)),
        ]
        for (grid, block) in bad {
            #expect(throws: KilnError.self) {
                try CUDAFunction.validate(grid: grid, block: block, sharedBytes: 0, function: "bad")
            }
        }
    }
}

private func worstDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1).isNaN ? .infinity : abs($1.0 - $1.1)) }
}

/// Copies `values` to device address `address` and waits.
private func upload(_ values: [Float], to address: UInt64, on stream: CUDAStream) throws {
    try values.withUnsafeBytes { raw in
        guard let base = raw.baseAddress else { return }
        try stream.copy(toDevice: address, from: base, bytes: raw.count)
        try stream.synchronize()
    }
}

/// `count` floats read back from device address `address`, after the stream's earlier work.
private func download(_ count: Int, from address: UInt64, on stream: CUDAStream) throws -> [Float] {
    var values = [Float](repeating: .nan, count: count)
    try values.withUnsafeMutableBytes { raw in
        guard let base = raw.baseAddress else { return }
        try stream.copy(toHost: base, from: address, bytes: raw.count)
        try stream.synchronize()
    }
    return values
}

/// Per-index results written from concurrent iterations.
private final class Mutex: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Int]
    init(count: Int) { storage = Array(repeating: 0, count: count) }
    func set(_ index: Int, _ value: Int) { lock.withLock { storage[index] = value } }
    var values: [Int] { lock.withLock { storage } }
}
