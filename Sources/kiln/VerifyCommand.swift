import ArgumentParser
import Foundation
import KilnCPU
import KilnIR
import KilnRuntime
import KilnTestSupport

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Run ONNX backend test cases and judge them as onnx's backend runner does.",
        discussion: """
            PATH is a test case (a folder with model.onnx and test_data_set_N/) or a folder searched recursively
            for cases. Prints one line per failing case and, last, 'N passed, M failed, K skipped'. Exits 0 only
            when no case failed.
            """
    )

    @Argument(help: "Test case folders, or folders holding them.")
    var paths: [String]

    @Option(help: "Only cases whose 'group/case' matches this regular expression.")
    var filter: String?

    @Option(help: "Write a TSV of group, case, status, message to this file.")
    var results: String?

    @Option(help: "Cases to run at once.")
    var jobs: Int = 1

    @OptionGroup var deviceOptions: DeviceOptions

    @Flag(help: "Save each built engine as a plan and run the engine loaded from it.")
    var throughPlan = false

    @Flag(help: "Print every case, not only failures.")
    var verbose = false

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        var cases = try ONNXTestCase.discover(paths)
        if let filter {
            let regex: NSRegularExpression
            do { regex = try NSRegularExpression(pattern: filter) } catch {
                throw KilnError.invalidArgument("--filter '\(filter)' is not a valid regular expression")
            }
            cases = cases.filter { c in
                let key = "\(c.group)/\(c.name)"
                return regex.firstMatch(in: key, range: NSRange(key.startIndex..., in: key)) != nil
            }
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let device: any Device
        if deviceOptions.device == .cpu {
            device = CPUDevice(threads: max(1, cores / jobs), options: .untuned)
        } else {
            device = try deviceOptions.make()
        }
        let runner = TestCaseRunner(device: device, throughPlan: throughPlan)
        let collected = ResultCollector(total: cases.count, verbose: verbose)
        let shared = cases
        DispatchQueue.concurrentPerform(iterations: jobs) { worker in
            var index = worker
            while index < shared.count {
                collected.add(runner.run(shared[index]))
                index += jobs
            }
        }
        let all = collected.sorted()
        if let results { try writeTSV(all, to: results) }
        let passed = all.filter { $0.status == .pass }.count
        let failed = all.filter { $0.status == .fail }.count
        let skipped = all.filter { $0.status == .skip }.count
        Console.line("\(passed) passed, \(failed) failed, \(skipped) skipped")
        if failed > 0 { throw ExitCode(1) }
    }

    private func writeTSV(_ all: [CaseResult], to path: String) throws {
        var text = ""
        for r in all { text += "\(r.testCase.group)\t\(r.testCase.name)\t\(r.status.rawValue)\t\(r.message)\n" }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw KilnError.io("\(path): cannot write results: \(error.localizedDescription)")
        }
    }
}

/// Gathers results from worker threads and prints failures as they come.
final class ResultCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [CaseResult] = []
    private let total: Int
    private let verbose: Bool

    init(total: Int, verbose: Bool) {
        self.total = total
        self.verbose = verbose
    }

    func add(_ result: CaseResult) {
        lock.lock()
        defer { lock.unlock() }
        results.append(result)
        let key = "\(result.testCase.group)/\(result.testCase.name)"
        switch result.status {
        case .fail: Console.line("FAIL \(key): \(result.message)")
        case .skip: if verbose { Console.line("SKIP \(key): \(result.message)") }
        case .pass: if verbose { Console.line("pass \(key) (\(String(format: "%.2f", result.seconds)) s)") }
        }
    }

    func sorted() -> [CaseResult] {
        lock.lock()
        defer { lock.unlock() }
        return results.sorted { ($0.testCase.group, $0.testCase.name) < ($1.testCase.group, $1.testCase.name) }
    }
}
