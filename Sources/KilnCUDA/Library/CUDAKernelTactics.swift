import KilnIR

/// Kiln's own kernels a library runner times beside the library's algorithms for its step: the launches that
/// compute a step (one per variant; a choice of the i-th is remembered as −1 − i) and how a launch's function
/// is loaded (compiled on first use).
public struct CUDAKernelTactics<Step>: Sendable {
    public let launches: @Sendable (Step) -> [CUDALaunch]
    public let load: @Sendable (CUDALaunch) throws -> CUDAFunction

    public init(
        launches: @escaping @Sendable (Step) -> [CUDALaunch],
        load: @escaping @Sendable (CUDALaunch) throws -> CUDAFunction
    ) {
        self.launches = launches
        self.load = load
    }

    /// No kernels: the library's algorithms only.
    public static var none: Self {
        Self(launches: { _ in [] }, load: { throw KilnError.unsupported("kernel '\($0.function)' is not a tactic") })
    }

    /// The `index`-th launch for `step` with its loaded function, or nil when there is none or it does not load.
    func chosen(_ index: Int, for step: Step) -> (launch: CUDALaunch, function: CUDAFunction)? {
        let all = launches(step)
        guard all.indices.contains(index), let function = try? load(all[index]) else { return nil }
        return (all[index], function)
    }
}

extension CUDAKernelTactics {
    /// The split-TF32 kernel (`CUDASplitProduct`) where `launches` finds it applies, its functions from `modules`.
    fileprivate static func splitTF32(
        modules: CUDAModuleCache, allowTF32: Bool,
        _ launches: @escaping @Sendable (Step, _ allowTF32: Bool, _ architecture: Int) -> [CUDALaunch]
    ) -> Self {
        let architecture = modules.architecture
        return Self(launches: { launches($0, allowTF32, architecture) }, load: { try modules.function(for: $0) })
    }
}

extension CUDAKernelTactics where Step == CUDAMatMul {
    /// The split-TF32 product where it applies.
    static func splitTF32(modules: CUDAModuleCache, allowTF32: Bool) -> Self {
        splitTF32(modules: modules, allowTF32: allowTF32) {
            CUDASplitProduct.launches($0, allowTF32: $1, architecture: $2)
        }
    }
}

extension CUDAKernelTactics where Step == CUDAConvolution {
    /// The split-TF32 implicit-GEMM convolution where it applies.
    static func splitTF32(modules: CUDAModuleCache, allowTF32: Bool) -> Self {
        splitTF32(modules: modules, allowTF32: allowTF32) {
            CUDASplitProduct.launches($0, allowTF32: $1, architecture: $2)
        }
    }
}
