import ArgumentParser
import Foundation
import KilnCPU
import KilnCUDA
import KilnIR
import KilnRuntime

/// The device flags shared by the commands that build engines.
struct DeviceOptions: ParsableArguments {
    enum Choice: String, ExpressibleByArgument, CaseIterable {
        case auto, cpu, cuda
    }

    @Option(help: "cpu, cuda, or auto: cuda when a GPU is usable, else cpu.")
    var device: Choice = .auto

    @Flag(help: "Run layers the GPU has no kernel for on the CPU instead of refusing to build.")
    var allowCPUFallback = false

    @Flag(name: .customLong("tf32"), help: "Let float32 matrix products and convolutions use TF32 tensor cores.")
    var tf32 = false

    @Option(
        help: ArgumentHelp(
            "Optimization level: 0 times no tactic (heuristics only); 1-5 time 2, 4, 8, 16, 32 candidates per layer.",
            valueName: "0-5"))
    var level: Int = BuildOptions.defaultLevel

    @Option(help: "Read tactic timings from this file and add new ones to it (made if missing).")
    var timingCache: String?

    @Option(
        help: ArgumentHelp(
            "Stop timing tactics this many seconds into the build; what is left takes known or heuristic choices.",
            valueName: "seconds"))
    var buildBudget: Double?

    func validate() throws {
        guard (0...5).contains(level) else { throw ValidationError("--level must be 0 to 5") }
        if let buildBudget, buildBudget < 0 { throw ValidationError("--build-budget must not be negative") }
    }

    /// Writes the device's tactics to `--timing-cache`, when given (after a build timed them). A cache that
    /// belongs to another device is left as it is.
    func saveTimingCache(_ device: any Device) throws {
        guard let timingCache else { return }
        let url = URL(fileURLWithPath: timingCache)
        if FileManager.default.fileExists(atPath: timingCache),
            try TimingCache.load(url, for: device.fingerprint, note: { _ in }) == nil
        {
            return  // opening the device already said why it is not used
        }
        try TimingCache(device: device.fingerprint, tactics: device.tactics).save(url)
    }

    /// Opens the device; `auto` falls back to the CPU when CUDA is unusable and says why. Prints the choice.
    func make(
        cudaGraphs: Bool = false, quiet: Bool = false, disabledPasses: Set<String> = []
    ) throws -> any Device {
        try open(
            device,
            options: BuildOptions(
                disabledPasses: disabledPasses, tf32: tf32, allowCPUFallback: allowCPUFallback, level: level),
            cudaGraphs: cudaGraphs, quiet: quiet, timingCache: timingCache)
    }

    /// Opens the device a plan was built for (or the one `--device` names) with the plan's build options.
    func make(for plan: EnginePlan, cudaGraphs: Bool = false, quiet: Bool = false) throws -> any Device {
        if tf32 || allowCPUFallback || level != BuildOptions.defaultLevel || timingCache != nil || buildBudget != nil {
            throw KilnError.invalidArgument(
                "--tf32, --allow-cpu-fallback, --level, --timing-cache and --build-budget are build options; a plan "
                    + "keeps those it was built with")
        }
        let choice = device == .auto ? Choice(rawValue: plan.device.kind) ?? .auto : device
        return try open(choice, options: plan.options, cudaGraphs: cudaGraphs, quiet: quiet, timingCache: nil)
    }

    private func open(
        _ choice: Choice, options: BuildOptions, cudaGraphs: Bool, quiet: Bool, timingCache: String?
    ) throws -> any Device {
        let deadline = buildBudget.map { Date().addingTimeInterval($0) }
        var kernels = CUDAOptions(allowTF32: options.tf32, level: options.level)
        kernels.tuningDeadline = deadline
        let cpuOptions = CPUOptions(level: options.level, tuningDeadline: deadline)
        let cudaOptions = CUDADeviceOptions(
            kernels: kernels,
            allowCPUFallback: options.allowCPUFallback, useCUDAGraphs: cudaGraphs,
            disabledPasses: options.disabledPasses)
        let chosen: any Device
        var why = ""
        switch choice {
        case .cpu:
            chosen = CPUDevice(options: cpuOptions)
        case .cuda:
            chosen = try CUDADevice(options: cudaOptions)
        case .auto:
            do {
                chosen = try CUDADevice(options: cudaOptions)
            } catch let error as KilnError where error.kind == .unsupported {
                why = " (\(error.message))"
                chosen = CPUDevice(options: cpuOptions)
            }
        }
        if !quiet { Console.error("device: \(chosen.properties.name)\(why)") }
        if let timingCache,
            let cache = try TimingCache.load(
                URL(fileURLWithPath: timingCache), for: chosen.fingerprint, note: { Console.error("note: \($0)") })
        {
            chosen.preloadTactics(cache.tactics)
            if !quiet { Console.error("timing cache: \(cache.tactics.count) tactics from \(timingCache)") }
        }
        return chosen
    }
}
