import KilnIR
import Testing

@testable import KilnCUDA

/// The layer cases of the float32 GPU suites again in float16 and bfloat16: each kernel reads 16-bit inputs,
/// computes in float32 and stores 16 bits, so it must match the float32 CPU reference on the same rounded
/// inputs within the output type's rounding (2^-11 relative for float16, 2^-8 for bfloat16), a little more
/// where a product's result is stored before its epilogue reads it back.
@Suite struct HalfGPUTests {
    static let cases: [GPUCase] = {
        let float32 = LayerGPUTests.cases + AttentionGPUTests.cases
        var cases: [GPUCase] = []
        for dtype in [DType.float16, .bfloat16] {
            for base in float32 where base.inputs.contains(where: Self.isFloat) {
                var c = base
                c.dtype = dtype
                (c.rtol, c.atol) = dtype == .float16 ? (4e-3, 2e-3) : (3e-2, 1.5e-2)
                cases.append(c)
            }
        }
        return cases
    }()

    @Test(.enabled(if: gpuUsable), arguments: cases)
    func matchesTheCPUReference(_ c: GPUCase) throws {
        try expectGPUMatchesCPU(c)
    }

    static func isFloat(_ spec: InputSpec) -> Bool {
        switch spec {
        case .float: true
        case .tensor(let t), .constant(let t): t.dtype == .float32
        default: false
        }
    }
}
