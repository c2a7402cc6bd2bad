import CKilnMicroKernels
import KilnIR
import KilnTestSupport
import Testing

@testable import KilnCPU

/// The int8 products' C dot-product kernels (int8 values widened to int16) against exact integer sums, for every
/// kernel this CPU has, one row of a and four at a time: depths around their step widths (16 with AVX2, 32 with
/// AVX-512 VNNI) so every tail length runs, and row counts around their groups of two and four. A kernel the CPU lacks is reported, not passed.
@Suite struct Int16DotsTests {
    typealias DotKernel =
        @convention(c) (
            UnsafePointer<Int16>?, UnsafePointer<Int16>?, Int, Int, UnsafeMutablePointer<Int32>?
        ) -> Void

    typealias FourRowKernel =
        @convention(c) (
            UnsafePointer<Int16>?, Int, UnsafePointer<Int16>?, Int, Int, UnsafeMutablePointer<Int32>?, Int
        ) -> Void

    static let kernels: [(name: String, feature: Int32, run: DotKernel, four: FourRowKernel)] = [
        ("avx2", KILN_CPU_AVX2_FMA, kiln_dots_i16_avx2, kiln_dots4_i16_avx2),
        ("avx512 vnni", KILN_CPU_AVX512_VNNI, kiln_dots_i16_avx512vnni, kiln_dots4_i16_avx512vnni),
    ]

    @Test(arguments: kernels.map(\.name))
    func matchesExactSums(_ name: String) throws {
        let kernel = try #require(Self.kernels.first { $0.name == name })
        guard kiln_cpu_features() & kernel.feature != 0 else {
            withKnownIssue("this CPU lacks \(name): its int16 dot kernel was NOT run") { Issue.record("no \(name)") }
            return
        }
        let seed = SeededGenerator.testSeed()
        var gen = SeededGenerator(seed: seed)
        for depth in [1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 288] {
            for count in [1, 3, 4, 5, 9] {
                let a = (0..<depth).map { _ in Int16.random(in: -255...255, using: &gen) }
                let b = (0..<(count * depth)).map { _ in Int16.random(in: -128...127, using: &gen) }
                var got = [Int32](repeating: -1, count: count)
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        got.withUnsafeMutableBufferPointer {
                            kernel.run(a.baseAddress, b.baseAddress, count, depth, $0.baseAddress)
                        }
                    }
                }
                let want = (0..<count).map { j in
                    Int32((0..<depth).reduce(0) { $0 + Int(a[$1]) * Int(b[j * depth + $1]) })
                }
                #expect(got == want, "\(name) depth \(depth) count \(count), seed \(seed)")

                // Four rows of a (the first, then copies offset by one, two and three) against the same b.
                let lda = depth + 3
                let rows = (0..<4 * lda).map { _ in Int16.random(in: -255...255, using: &gen) }
                var four = [Int32](repeating: -1, count: 4 * count)
                rows.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        four.withUnsafeMutableBufferPointer {
                            kernel.four(a.baseAddress, lda, b.baseAddress, count, depth, $0.baseAddress, count)
                        }
                    }
                }
                let wantFour = (0..<4).flatMap { i in
                    (0..<count).map { j in
                        Int32((0..<depth).reduce(0) { $0 + Int(rows[i * lda + $1]) * Int(b[j * depth + $1]) })
                    }
                }
                #expect(four == wantFour, "\(name) four rows, depth \(depth) count \(count), seed \(seed)")
            }
        }
    }
}
