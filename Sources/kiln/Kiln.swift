import ArgumentParser

@main
struct Kiln: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Kiln: a deep-learning inference optimizer and runtime.",
        version: KilnVersion.string,
        subcommands: [RunCommand.self, BenchCommand.self, VerifyCommand.self, InspectCommand.self, CompareCommand.self]
    )
}

enum KilnVersion {
    static let string = "0.1.0"
}
