import CKilnMicroKernels
import Foundation

/// One way to run the SGEMM: a register-tiled micro-kernel (its tile of C and the instruction set it needs)
/// and the depth blocking of the packed operands. Named like `cpu.gemm.avx2.6x16.kc256` in timing caches and
/// plans. Which one is fastest depends on the CPU and on the product's shape (a narrow tile wastes less on a
/// product with few columns), so the builder times them per layer (`GemmTuner`).
struct GemmTactic: Hashable, Sendable, CustomStringConvertible {
    enum MicroKernel: String, CaseIterable, Sendable {
        /// The portable Swift kernel (SSE2 on x86-64, NEON elsewhere): 6 x 8.
        case portable6x8 = "simd.6x8"
        case avx2x6x16 = "avx2.6x16"
        case avx512x12x32 = "avx512.12x32"
        case avx512x24x16 = "avx512.24x16"

        var rows: Int {
            switch self {
            case .portable6x8, .avx2x6x16: 6
            case .avx512x12x32: 12
            case .avx512x24x16: 24
            }
        }

        var columns: Int {
            switch self {
            case .portable6x8: 8
            case .avx2x6x16, .avx512x24x16: 16
            case .avx512x12x32: 32
            }
        }

        /// The C kernel, nil for the portable one.
        var tile: kiln_sgemm_tile? {
            switch self {
            case .portable6x8: nil
            case .avx2x6x16: kiln_sgemm_avx2_6x16
            case .avx512x12x32: kiln_sgemm_avx512_12x32
            case .avx512x24x16: kiln_sgemm_avx512_24x16
            }
        }

        /// Whether this CPU (and its operating system) runs the kernel.
        var isAvailable: Bool {
            switch self {
            case .portable6x8: true
            case .avx2x6x16: CPUFeatures.current & KILN_CPU_AVX2_FMA != 0
            case .avx512x12x32, .avx512x24x16: CPUFeatures.current & KILN_CPU_AVX512F != 0
            }
        }
    }

    var kernel: MicroKernel
    /// Depth of one packed block: one B panel (kc x nr) stays in L1 while A panels stream past it.
    var kc: Int

    /// Rows of A packed per panel, columns of B per panel.
    var mr: Int { kernel.rows }
    var nr: Int { kernel.columns }
    /// Rows of C per task: a multiple of `mr` whose A tile (mc x kc) fits in L2.
    var mc: Int { kernel == .portable6x8 ? 72 : 96 }
    /// Columns of C per task: a multiple of `nr`.
    var nc: Int { 192 }

    var description: String { "cpu.gemm.\(kernel.rawValue).kc\(kc)" }

    init(_ kernel: MicroKernel, kc: Int = 256) {
        self.kernel = kernel
        self.kc = kc
    }

    /// The tactic `description` names, if this CPU runs it.
    init?(named name: String) {
        let prefix = "cpu.gemm."
        guard name.hasPrefix(prefix), let dot = name.lastIndex(of: "."),
            name[dot...].hasPrefix(".kc"), let kc = Int(name[name.index(dot, offsetBy: 3)...]), kc > 0,
            let kernel = MicroKernel(rawValue: String(name[name.index(name.startIndex, offsetBy: prefix.count)..<dot])),
            kernel.isAvailable
        else { return nil }
        self.init(kernel, kc: kc)
    }

    /// The portable kernel: what the kernels' reference results are checked against.
    static let portable = GemmTactic(.portable6x8)

    /// Every tactic this CPU runs, the likely fastest first: the instruction-set kernels at each depth
    /// blocking, then the portable kernel (the reference every candidate is checked against).
    static let candidates: [GemmTactic] = {
        let fast = [MicroKernel.avx2x6x16, .avx512x12x32, .avx512x24x16].filter(\.isAvailable)
        let depths = [256, 512, 128]
        return depths.flatMap { kc in fast.map { GemmTactic($0, kc: kc) } }
            + depths.map { GemmTactic(.portable6x8, kc: $0) }
    }()

    /// The choice without timing.
    static var heuristic: GemmTactic { candidates[0] }
}

/// The instruction sets of this CPU, read once. `KILN_CPU_ISA` caps them (`portable`, `avx2`, `avx512`), for
/// comparing kernels and for bisecting a numerical difference.
enum CPUFeatures {
    static let current: Int32 = {
        let found = kiln_cpu_features()
        switch ProcessInfo.processInfo.environment["KILN_CPU_ISA"] {
        case "portable": return 0
        case "avx2": return found & KILN_CPU_AVX2_FMA
        case nil, "avx512": return found
        case let other?:
            FileHandle.standardError.write(
                Data("note: KILN_CPU_ISA=\(other) is not portable, avx2 or avx512; ignored\n".utf8))
            return found
        }
    }()

    /// The widest instruction set the micro-kernels use here, for tactic signatures and reports.
    static var name: String {
        if current & KILN_CPU_AVX512F != 0 { return "avx512" }
        if current & KILN_CPU_AVX2_FMA != 0 { return "avx2" }
        return "simd"
    }
}
