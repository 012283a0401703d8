import ArgumentParser
import Cartridges
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench`: figures for the node, measured in a release build, never asserted in tests.
@main
struct NodeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node-bench",
        abstract: "Measure the node's speed and memory.",
        subcommands: [RepositoryBench.self, GearsBench.self, FrontendBench.self, AgentBench.self, SnapshotBench.self, SSHBench.self, DeployBench.self, ReadyBench.self, FleetBench.self, Phase.self])
}

/// `node-bench repository --cartridges N`: the repository's rescans, load and listing.
///
/// Each measurement runs in a fresh child process (this executable, `phase` subcommand), so
/// its peak memory (the child's maximum resident set size, from wait4) belongs to that
/// phase alone, and "cold load" really is a new process.
struct RepositoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repository",
        abstract: "Rescan, load and list N generated cartridges (3 software versions, 2 endpoints, a 100 KB file each).")

    @Option(help: "How many cartridges to generate.")
    var cartridges = 1000

    @Option(help: "Repetitions per phase (the median is reported).")
    var runs = 5

    @Option(help: "Work directory (default: a new one under /tmp, removed afterwards).")
    var directory: String?

    func run() throws {
        let work = directory ?? TestFiles.temporaryDirectory("node-bench")
        defer { if directory == nil { TestFiles.remove(work) } }
        let base = work + "/cartridges"
        let repository = work + "/repository"
        let clock = ContinuousClock()
        let generation = try clock.measure { try generate(count: cartridges, into: base) }
        print("node-bench repository: \(cartridges) cartridges (3 versions, 2 endpoints, 100 KB file each) "
            + "generated in \(format(generation)); \(runs) runs per phase, median shown")
        print(pad("phase", 16) + pad("op median", 12) + pad("process", 12) + pad("peak RSS", 10) + "result")
        let phases: [(String, String, Bool)] = [
            ("first rescan", "rescan", true),
            ("restart rescan", "rescan", false),
            ("cold load", "load", false),
            ("full listing", "list", false),
        ]
        for (label, phase, fresh) in phases {
            var operation: [Double] = []
            var process: [Double] = []
            var peaks: [Int] = []
            var result = ""
            for _ in 0..<runs {
                if fresh { TestFiles.remove(repository) }
                let measured = try runPhase(phase, base: base, repository: repository)
                operation.append(measured.operationSeconds)
                process.append(measured.processSeconds)
                peaks.append(measured.peakKilobytes)
                result = measured.result
            }
            print(pad(label, 16) + pad(format(median(operation)), 12) + pad(format(median(process)), 12)
                + pad("\(format1(median(peaks.map(Double.init)) / 1024)) MB", 10) + result)
        }
    }

    private func generate(count: Int, into base: String) throws {
        let blob = String(repeating: "0123456789abcdef", count: 100 * 1024 / 16)
        for i in 0..<count {
            var builder = CartridgeBuilder(name: "bench\(i)", versions: ["1.0", "1.1", "2.0"], cartridgeVersion: "0.0.\(i % 7 + 1)")
            builder.endpoints = 2
            builder.files["usr/share/blob.dat"] = blob
            try builder.write(into: base)
        }
    }

    struct Measured {
        var operationSeconds: Double
        var processSeconds: Double
        var peakKilobytes: Int
        var result: String
    }

    private func runPhase(_ phase: String, base: String, repository: String) throws -> Measured {
        let executable = "/proc/self/exe"
        let argv = [CommandLine.arguments[0], "phase", phase, "--base", base, "--repository", repository]
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw ValidationError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let start = ContinuousClock.now
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, cArgs, environ)
        posix_spawn_file_actions_destroy(&actions)
        close(pipeFDs[1])
        guard rc == 0 else { throw ValidationError("posix_spawn failed: \(rc)") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(pipeFDs[0], &buffer, buffer.count)
            if n <= 0 { break }
            output += buffer[0..<n]
        }
        close(pipeFDs[0])
        var status: Int32 = 0
        var usage = rusage()
        wait4(pid, &status, 0, &usage)
        let elapsed = ContinuousClock.now - start
        let fields = String(decoding: output, as: UTF8.self).split(separator: "\t", maxSplits: 1)
        guard fields.count == 2, let operationSeconds = Double(fields[0]) else {
            throw ValidationError("phase \(phase) failed: \(String(decoding: output, as: UTF8.self))")
        }
        return Measured(operationSeconds: operationSeconds, processSeconds: seconds(elapsed), peakKilobytes: usage.ru_maxrss,
                        result: fields[1].trimmingCharacters(in: "\n"))
    }
}

/// One measured operation, in this process; prints `<seconds>\t<result>`.
struct Phase: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Internal: run one measured phase (used by `repository`).",
                                                    shouldDisplay: false)

    @Argument var phase: String
    @Option var base: String
    @Option var repository: String

    func run() throws {
        let repo = CartridgeRepository(configuration: .init(path: repository, cartridgeBasePath: base))
        let clock = ContinuousClock()
        var result = ""
        let elapsed = try clock.measure {
            switch phase {
            case "rescan":
                let report = repo.rescan()
                result = "\(report.installed) installed, \(report.unchanged) unchanged, \(report.failed) failed, \(report.entryCount) entries"
            case "load":
                let report = try repo.load()
                result = "\(report.entryCount) entries, \(report.problems.count) problems"
            case "list":
                try repo.load()
                let text = repo.snapshot.listing
                result = "\(text.utf8.count) bytes of listing"
            default:
                throw ValidationError("unknown phase \(phase)")
            }
        }
        print("\(seconds(elapsed))\t\(result)")
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func format(_ duration: Duration) -> String { format(seconds(duration)) }

func format(_ seconds: Double) -> String {
    seconds >= 1 ? "\(format1(seconds)) s" : "\(format1(seconds * 1000)) ms"
}

func format1(_ value: Double) -> String {
    let tenths = (value * 10).rounded()
    return "\(Int(tenths) / 10).\(abs(Int(tenths)) % 10)"
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}


extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(self.drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
