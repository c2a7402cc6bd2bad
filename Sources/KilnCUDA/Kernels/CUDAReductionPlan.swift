import KilnIR

/// A reduction seen as a 3-D array [outer, reduced, inner]: every output element (o, j) folds
/// `x[(o * reduced + r) * inner + j]` over r. Only reductions whose reduced axes are one contiguous run (after
/// dropping axes of size 1, which never change the layout) have this form.
struct CUDAReduceFactorization: Sendable, Hashable {
    var outer: Int
    var reduced: Int
    var inner: Int

    var outputCount: Int { outer * inner }

    /// The factorization of reducing `axes` (normalized, any order) of `shape`, or nil when the reduced axes are
    /// not contiguous in memory.
    static func make(shape: [Int], axes: [Int]) -> CUDAReduceFactorization? {
        let set = Set(axes)
        // Axes of size 1 may be treated as reduced or kept freely; drop them from the contiguity check.
        let significant = shape.indices.filter { shape[$0] != 1 }
        let reducedPositions = significant.indices.filter { set.contains(significant[$0]) }
        if let first = reducedPositions.first, let last = reducedPositions.last,
            last - first + 1 != reducedPositions.count
        {
            return nil
        }
        var outer = 1
        var reduced = 1
        var inner = 1
        var seenReduced = false
        for (i, d) in shape.enumerated() {
            if set.contains(i) {
                reduced *= d
                if d != 1 { seenReduced = true }
            } else if d == 1 {
                continue
            } else if seenReduced {
                inner *= d
            } else {
                outer *= d
            }
        }
        // Every significant kept axis lies before or after the reduced run; with no significant reduced axis
        // all kept axes count as outer, which is the same memory order.
        return CUDAReduceFactorization(outer: outer, reduced: reduced, inner: inner)
    }

    /// The [outer, count, inner] split around one axis (softmax, Lp normalization).
    static func around(shape: [Int], axis: Int) -> CUDAReduceFactorization {
        CUDAReduceFactorization(
            outer: shape[..<axis].reduce(1, *), reduced: shape[axis], inner: shape[(axis + 1)...].reduce(1, *))
    }
}

/// Launch-shape arithmetic shared by the reduction-family lowerings.
enum CUDAReductionLaunch {
    /// Streaming multiprocessors of the largest target (H100 SXM has 132); used only to size grids.
    static let multiprocessors = 132
    /// The most blocks a 1-D grid-stride launch uses: enough to fill every SM several times over.
    static let maxGridBlocks = multiprocessors * 32

    static func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

    /// Blocks for `work` items handled `perBlock` at a time by a grid-stride kernel: at least 1, at most
    /// `cap`.
    static func blocks(_ work: Int, perBlock: Int, cap: Int = maxGridBlocks) -> Int {
        max(1, min(ceilDiv(max(work, 0), perBlock), cap))
    }

    /// The smallest power of two >= n (n >= 1).
    static func powerOfTwo(atLeast n: Int) -> Int {
        var p = 1
        while p < n { p *= 2 }
        return p
    }
}

/// The dtypes the reduction family has kernels for, with their C spellings.
enum CUDAReductionTypes {
    /// The element type and the accumulator type, or `unsupported`.
    static func require(_ dtype: DType, _ what: String) throws -> (element: String, accumulator: String) {
        switch dtype {
        case .float32: return ("float", "float")
        case .float64: return ("double", "double")
        // Stored 16-bit, folded in float32.
        case .float16: return ("kiln_half", "float")
        case .bfloat16: return ("kiln_bf16", "float")
        default:
            throw KilnError.unsupported(
                "CUDA \(what) has kernels for float32, float64, float16 and bfloat16 only, not \(dtype.onnxName)")
        }
    }
}

extension CUDANodeInfo {
    /// Whether output `index` exists and something names it (ONNX leaves unused optional outputs unnamed).
    func reductionHasOutput(_ index: Int) -> Bool {
        index < outputs.count && index < node.outputs.count && !node.outputs[index].isEmpty
    }
}
