import ArgumentParser
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

    /// Opens the device; `auto` falls back to the CPU when CUDA is unusable and says why. Prints the choice.
    func make(
        cudaGraphs: Bool = false, quiet: Bool = false, disabledPasses: Set<String> = []
    ) throws -> any Device {
        try open(
            device,
            options: BuildOptions(disabledPasses: disabledPasses, tf32: tf32, allowCPUFallback: allowCPUFallback),
            cudaGraphs: cudaGraphs, quiet: quiet)
    }

    /// Opens the device a plan was built for (or the one `--device` names) with the plan's build options.
    func make(for plan: EnginePlan, cudaGraphs: Bool = false, quiet: Bool = false) throws -> any Device {
        if tf32 || allowCPUFallback {
            throw KilnError.invalidArgument(
                "--tf32 and --allow-cpu-fallback are build options; a plan keeps those it was built with")
        }
        let choice = device == .auto ? Choice(rawValue: plan.device.kind) ?? .auto : device
        return try open(choice, options: plan.options, cudaGraphs: cudaGraphs, quiet: quiet)
    }

    private func open(_ choice: Choice, options: BuildOptions, cudaGraphs: Bool, quiet: Bool) throws -> any Device {
        let cudaOptions = CUDADeviceOptions(
            kernels: CUDAOptions(allowTF32: options.tf32), allowCPUFallback: options.allowCPUFallback,
            useCUDAGraphs: cudaGraphs, disabledPasses: options.disabledPasses)
        let chosen: any Device
        switch choice {
        case .cpu:
            chosen = CPUDevice()
        case .cuda:
            chosen = try CUDADevice(options: cudaOptions)
        case .auto:
            do {
                chosen = try CUDADevice(options: cudaOptions)
            } catch let error as KilnError where error.kind == .unsupported {
                if !quiet { Console.error("device: CPU (\(error.message))") }
                return CPUDevice()
            }
        }
        if !quiet { Console.error("device: \(chosen.properties.name)") }
        return chosen
    }
}
