import ArgumentParser
import KilnIR
import KilnOptimizer
import KilnRuntime

/// Switching optimizer passes off, to bisect a numerical problem or to measure what a pass buys.
struct OptimizerOptions: ParsableArguments {
    @Option(
        name: .customLong("no-fuse"),
        help: ArgumentHelp("Leave this optimizer pass out (repeatable).", valueName: "pass"))
    var noFuse: [String] = []

    @Option(
        help: ArgumentHelp(
            "Run only these optimizer passes (comma list, in the standard order; 'none' for no pass). Passes: "
                + Pipeline.standardPassNames.joined(separator: ", ") + ".",
            valueName: "list"))
    var passes: String?

    /// The standard passes to leave out; unknown names are an error naming the known ones.
    func disabledPasses() throws -> Set<String> {
        var disabled = Set(noFuse)
        if let passes {
            let wanted = passes == "none" ? [] : passes.split(separator: ",").map { String($0) }
            disabled.formUnion(Set(Pipeline.standardPassNames).subtracting(wanted))
            disabled.formUnion(Set(wanted).subtracting(Pipeline.standardPassNames))
        }
        _ = try Pipeline.standard.disabling(disabled)
        return disabled
    }

    func builderConfig() throws -> BuilderConfig { BuilderConfig(disabledPasses: try disabledPasses()) }
}
