import ArgumentParser
import KilnRuntime

@main
struct Kiln: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Kiln: a deep-learning inference optimizer and runtime.",
        version: KilnVersion.string,
        subcommands: [
            DemoCommand.self, BuildCommand.self, RunCommand.self, RefitCommand.self, BenchCommand.self,
            VerifyCommand.self,
            InspectCommand.self,
            CompareCommand.self,
        ]
    )
}
