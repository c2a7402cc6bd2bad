import Foundation
import KilnIR

/// Compiles and loads each distinct `CUDASource` once for one context. Thread-safe. `prepare` compiles many
/// sources in parallel, which keeps engine builds fast (NVRTC takes tens of milliseconds a module). Cubins
/// from a plan file (`preload`) are used before anything is compiled, so a plan runs without NVRTC.
public final class CUDAModuleCache: @unchecked Sendable {
    public let context: CUDAContext
    /// Compute capability the cubins are built for (the context's).
    public let architecture: Int
    private let loadCompiler: @Sendable () throws -> NVRTC
    private let lock = NSLock()
    private var modules: [CUDASource: CUDAModule] = [:]
    private var images: [CUDASource: [UInt8]] = [:]
    /// Cubins from a plan, by `CUDASource.planName`.
    private var preloaded: [String: [UInt8]] = [:]
    /// How many sources NVRTC compiled (plans loaded with all their code compile none).
    public private(set) var compilations = 0

    /// `compiler` is asked for NVRTC only when a source has to be compiled.
    public init(context: CUDAContext, compiler: @escaping @Sendable () throws -> NVRTC = { try NVRTC.shared() }) {
        self.context = context
        loadCompiler = compiler
        architecture = context.computeCapability
    }

    /// The loaded module of `source`, compiling it on first use.
    public func module(for source: CUDASource) throws -> CUDAModule {
        if let module = lock.withLock({ modules[source] }) { return module }
        let image = try lock.withLock({ preloaded[source.planName] }) ?? compile(source)
        return try insert(source, image: image)
    }

    /// The loaded function of `launch`, compiled on first use, allowed the dynamic shared memory it asks for.
    public func function(for launch: CUDALaunch) throws -> CUDAFunction {
        let function = try module(for: launch.source).function(launch.function)
        if launch.sharedBytes > 48 << 10 { try function.setMaxDynamicSharedMemory(launch.sharedBytes) }
        return function
    }

    /// Keeps compiled cubins (from a plan file) for the sources named by their `planName`.
    public func preload(_ code: [(name: String, image: [UInt8])]) {
        lock.withLock { for (name, image) in code { preloaded[name] = image } }
    }

    private func compile(_ source: CUDASource) throws -> [UInt8] {
        let compiler = try compiler(for: [source])
        lock.withLock { compilations += 1 }
        return try compiler.compile(source, architecture: architecture)
    }

    /// NVRTC, or an error naming the `sources` that would need it.
    private func compiler(for sources: [CUDASource]) throws -> NVRTC {
        do {
            return try loadCompiler()
        } catch {
            let names = sources.map { "'\($0.name)'" }
            let listed =
                names.count == 1
                ? "kernel \(names[0]) is" : "\(names.count) kernels (\(names.joined(separator: ", "))) are"
            throw KilnError.unsupported(
                "\(listed) not compiled in the plan and NVRTC is unavailable (\(error)): build the plan with "
                    + "`--shape` or a `--profile` for these input shapes, or install NVRTC")
        }
    }

    /// The cubin of a source compiled or loaded through this cache, for saving in a plan.
    public func image(for source: CUDASource) -> [UInt8]? {
        lock.withLock { images[source] }
    }

    /// Loads a cubin compiled earlier (from a plan file) as `source`'s module, without NVRTC.
    @discardableResult
    public func load(_ source: CUDASource, image: [UInt8]) throws -> CUDAModule {
        try insert(source, image: image)
    }

    /// Compiles (in parallel) and loads every source not cached yet. Throws the first failure in `sources`
    /// order after all compilations finished; sources that compiled stay cached.
    public func prepare(_ sources: [CUDASource]) throws {
        var seen = Set<CUDASource>()
        let missing = lock.withLock { sources.filter { modules[$0] == nil && seen.insert($0).inserted } }
        guard !missing.isEmpty else { return }
        let uncompiled = lock.withLock { missing.filter { preloaded[$0.planName] == nil } }
        if !uncompiled.isEmpty { _ = try compiler(for: uncompiled) }
        let results = ResultSlots<[UInt8]>(count: missing.count)
        DispatchQueue.concurrentPerform(iterations: missing.count) { index in
            let source = missing[index]
            results.set(
                index, Result { try self.lock.withLock({ self.preloaded[source.planName] }) ?? self.compile(source) })
        }
        var firstError: (any Error)?
        for (index, source) in missing.enumerated() {
            do {
                _ = try insert(source, image: try results.get(index).get())
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }

    /// Loads `image` unless another thread loaded `source` first, and returns the cached module.
    private func insert(_ source: CUDASource, image: [UInt8]) throws -> CUDAModule {
        if let module = lock.withLock({ modules[source] }) { return module }
        let module = try withErrorContext("module '\(source.name)'") { try context.loadModule(image: image) }
        return lock.withLock {
            if let existing = modules[source] { return existing }
            modules[source] = module
            images[source] = image
            return module
        }
    }
}

/// Fixed slots written from concurrent iterations (each index by one writer), read after they all finish.
private final class ResultSlots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Result<T, any Error>) {
        lock.withLock { slots[index] = value }
    }

    func get(_ index: Int) -> Result<T, any Error> {
        lock.withLock { slots[index] } ?? .failure(KilnError.runtime("compilation \(index) produced no result"))
    }
}
