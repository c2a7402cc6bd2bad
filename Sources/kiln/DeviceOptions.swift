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
        let options = CUDADeviceOptions(
            kernels: CUDAOptions(allowTF32: tf32), allowCPUFallback: allowCPUFallback, useCUDAGraphs: cudaGraphs,
            disabledPasses: disabledPasses)
        let chosen: any Device
        switch device {
        case .cpu:
            chosen = CPUDevice()
        case .cuda:
            chosen = try CUDADevice(options: options)
        case .auto:
            do {
                chosen = try CUDADevice(options: options)
            } catch let error as KilnError where error.kind == .unsupported {
                if !quiet { Console.error("device: CPU (\(error.message))") }
                return CPUDevice()
            }
        }
        if !quiet { Console.error("device: \(chosen.properties.name)") }
        return chosen
    }
}
