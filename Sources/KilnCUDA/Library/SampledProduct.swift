import Foundation
import KilnIR
import KilnRuntime

/// Some entries of a product step's result computed on the host in double precision from the operands a tactic
/// timer uploaded: the reference every timed cuBLASLt algorithm must reproduce (each sampled entry is one dot
/// product of length k, so checking costs little even where the whole product would take the CPU seconds).
struct SampledProduct {
    struct Entry: Hashable {
        var batch: Int
        var row: Int
        var column: Int
    }

    let step: CUDAMatMul
    /// The corners of the first and last matrix, then seeded random entries.
    let entries: [Entry]

    init(_ step: CUDAMatMul, count: Int = 64, seed: UInt64 = 7) {
        self.step = step
        var generator = SeededGenerator(seed: seed)
        func pick(_ bound: Int) -> Int { min(Int(generator.unit() * Double(bound)), bound - 1) }
        let last = Entry(batch: step.batch - 1, row: step.m - 1, column: step.n - 1)
        var entries = [Entry(batch: 0, row: 0, column: 0), last]
        while entries.count < count {
            entries.append(Entry(batch: pick(step.batch), row: pick(step.m), column: pick(step.n)))
        }
        self.entries = entries
    }

    /// Whether the host can compute the step's epilogue (the activations cuBLASLt applies itself).
    static func supports(_ step: CUDAMatMul) -> Bool {
        switch step.activation {
        case nil, .relu?, .gelu(tanh: true)?: step.dtype != .int8
        default: false
        }
    }

    /// `activation(alpha · op(A)·op(B) + beta · C + bias)` at each entry, from the operands as stored (row-major,
    /// batch strides as the step gives them). With `tf32`, A and B are first rounded to TF32 as the tensor cores
    /// read them.
    func reference(a: [Float], b: [Float], c: [Float]?, bias: [Float]?, tf32: Bool) -> [Double] {
        let s = step
        func operand(_ x: Float) -> Double { Double(tf32 ? Self.tf32(x) : x) }
        return entries.map { e in
            let baseA = e.batch * s.strideA
            let baseB = e.batch * s.strideB
            var sum = 0.0
            for t in 0..<s.k {
                let x = a[baseA + (s.transposeA ? t * s.m + e.row : e.row * s.k + t)]
                let y = b[baseB + (s.transposeB ? e.column * s.k + t : t * s.n + e.column)]
                sum += operand(x) * operand(y)
            }
            var value = Double(s.alpha) * sum
            if let c { value += Double(s.beta) * Double(c[e.batch * s.strideC + e.row * s.n + e.column]) }
            if let bias { value += Double(bias[e.column]) }
            switch s.activation {
            case .relu?: value = max(value, 0)
            case .gelu(tanh: true)?:
                value =
                    0.5 * value
                    * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (value + 0.044715 * value * value * value)))
            default: break
            }
            return value
        }
    }

    /// ‖sampled entries of `d` − `expected`‖ / ‖`expected`‖, `d` laid out as the step's D (infinite for a
    /// non-finite entry).
    func relativeError(of d: [Float], from expected: [Double]) -> Double {
        sampledRelativeError(
            entries.map { Double(d[$0.batch * step.strideD + $0.row * (step.rowStrideD ?? step.n) + $0.column]) },
            expected)
    }

    /// How far the sampled entries may be from the double-precision reference.
    static func tolerance(_ step: CUDAMatMul, tf32: Bool) -> Double {
        sampledTolerance(step.dtype, terms: step.k, tf32: tf32)
    }

    /// `x` rounded to TF32 (10 stored mantissa bits), to nearest, ties to even.
    static func tf32(_ x: Float) -> Float {
        guard x.isFinite else { return x }
        let bits = x.bitPattern
        let rounded = (bits + 0xFFF + ((bits >> 13) & 1)) & ~UInt32(0x1FFF)
        return Float(bitPattern: rounded)
    }
}

/// How far sampled entries of a sum of `terms` products may be from their double-precision reference: the
/// output type's rounding (16-bit types), TF32's rounding of the inputs (where the library rounds otherwise
/// than to nearest), or float32 additions, whose error grows about as the square root of the terms.
func sampledTolerance(_ dtype: DType, terms: Int, tf32: Bool) -> Double {
    switch dtype {
    case .float16: 2e-3
    case .bfloat16: 1.5e-2
    default: tf32 ? 1e-3 : max(1e-5, 16 * Double(terms).squareRoot() * 0x1p-24)
    }
}

/// ‖`got` − `expected`‖ / ‖`expected`‖ in double precision, infinite for a non-finite difference.
func sampledRelativeError(_ got: [Double], _ expected: [Double]) -> Double {
    var (difference, norm) = (0.0, 0.0)
    for (g, e) in zip(got, expected) {
        difference += (g - e) * (g - e)
        norm += e * e
    }
    guard difference.isFinite else { return .infinity }
    return norm == 0 ? (difference == 0 ? 0 : .infinity) : (difference / norm).squareRoot()
}
