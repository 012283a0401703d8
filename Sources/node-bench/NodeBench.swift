import ArgumentParser
import Cartridges
import NodeConfig
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
        subcommands: [RepositoryBench.self, GearsBench.self, FrontendBench.self, AgentBench.self, SnapshotBench.self, SSHBench.self, DeployBench.self, ReadyBench.self, FleetBench.self, Phase.self, Launch.self])
}

/// `node-bench repository --cartridges N`: the repository's rescans, load and listing, against
/// the least work each could do.
///
/// The cartridges are generated like origin-server's packaged ones (`BenchCartridge`). Each row
/// is a fresh process: either this executable's hidden `phase` subcommand, which also reports the
/// operation's own time, or the real command an admin or the daemon's unit runs
/// (`oo-admin-cartridge`, `openshift-node rescan`, pointed at the bench's node.conf). Every process
/// is timed from `posix_spawn` to `wait4`, and its peak memory is `ru_maxrss` from `wait4`, so
/// start-up and exit are in the figures. The floors (`RepositoryFloor`) are timed the same way.
struct RepositoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repository",
        abstract: "Rescan, load and list N generated cartridges shaped like origin-server's, in-process and as real commands, "
            + "against a system-call floor.")

    @Option(help: "How many cartridges to generate.")
    var cartridges = 1000

    @Option(help: "Repetitions per row (the median is reported).")
    var runs = 5

    @Option(help: "Work directory (default: a new one under /tmp, removed afterwards).")
    var directory: String?

    func validate() throws {
        guard cartridges > 0 else { throw ValidationError("--cartridges must be at least 1") }
        guard runs > 0 else { throw ValidationError("--runs must be at least 1") }
    }

    /// Which floor a row is compared with.
    enum Floor { case rescan, listing }

    struct Row {
        var phase: String
        var how: String
        /// The operation inside the process; nil for real commands, which do not report it.
        var operation: Double?
        var process: Double
        var peakKilobytes: Int
        var floor: Floor?
        var result: String
    }

    func run() throws {
        let work = directory ?? TestFiles.temporaryDirectory("node-bench")
        defer { if directory == nil { TestFiles.remove(work) } }
        let base = work + "/cartridges"
        let repository = work + "/repository"
        let nodeConf = work + "/node.conf"
        try TestFiles.write(nodeConf, "CARTRIDGE_BASE_PATH=\"\(base)\"\nCARTRIDGE_REPO_DIR=\"\(repository)\"\nCARTRIDGE_WATCH=false\n")
        let admin = siblingPath("oo-admin-cartridge")
        let daemon = siblingPath("openshift-node")
        for tool in [admin, daemon] where access(tool, X_OK) != 0 {
            throw BenchFailure("\(tool) is missing: build the oo-admin-cartridge and openshift-node products into the same "
                + "scratch path as node-bench")
        }
        let bench = Bench(base: base, repository: repository, work: work, runs: runs)

        let sample = BenchCartridge(index: 0)
        let clock = ContinuousClock()
        let generation = try clock.measure {
            for i in 0..<cartridges { try BenchCartridge(index: i).write(into: base) }
        }
        print("node-bench repository: \(cartridges) cartridges shaped like origin-server's, generated in \(format(generation))")
        print("  each: manifest.yml \(format1(Double(sample.manifest.utf8.count) / 1024)) KB (3 versions, Version-Overrides per "
            + "version with Display-Name/License/Provides/2 endpoints, 2 endpoints, Cart-Data, Publishes/Subscribes); "
            + "\(sample.fileCount) files (bin/ 4, hooks/ 2, env/ 3, metadata/ 2, template/ 4, README, LICENSE, "
            + "\(BenchCartridge.payloadBytes / 1024) KB \(BenchCartridge.payloadPath)); \(BenchCartridge.versions.count) entries")
        print("  commands: \(admin) --config \(nodeConf) --action rescan | --list")
        print("            \(daemon) rescan --config \(nodeConf)")
        print("  \(runs) runs per row, medians; page cache warm throughout (\"cold\" = a new process)")

        var rows: [Row] = []
        // The first rescan installs into an empty repository; its last run leaves it populated.
        rows.append(try bench.phase("first rescan", "rescan", fresh: true, expect: "\(cartridges) installed, 0 unchanged, 0 failed"))
        rows.append(try bench.phase("rescan floor", "floor-rescan", floor: .rescan))
        rows.append(try bench.phase("restart rescan", "rescan", floor: .rescan,
                                    expect: "0 installed, \(cartridges) unchanged, 0 failed"))
        for (how, argv) in [("oo-admin-cartridge --action rescan", [admin, "--config", nodeConf, "--action", "rescan"]),
                            ("openshift-node rescan", [daemon, "rescan", "--config", nodeConf])] {
            rows.append(try bench.command("restart rescan", how, argv, floor: .rescan) { run in
                let unchanged = run.lines.filter { $0.hasPrefix("unchanged ") }.count
                guard unchanged == cartridges, let summary = run.lines.last?.split(separator: ": ", maxSplits: 1).last else {
                    throw BenchFailure("\(unchanged) of \(cartridges) sources reported unchanged")
                }
                return "\(run.lines.count) lines; " + summary
            })
        }
        rows.append(try bench.phase("listing floor", "floor-list", floor: .listing))
        rows.append(try bench.phase("cold load", "load", floor: .listing))
        rows.append(try bench.phase("full listing", "list", floor: .listing))
        let entries = cartridges * BenchCartridge.versions.count
        rows.append(try bench.command("cold listing", "oo-admin-cartridge --list", [admin, "--config", nodeConf, "--list"],
                                      floor: .listing) { run in
            let lines = run.lines
            let tuples = lines.filter { $0.hasPrefix("(") && $0.hasSuffix(")") }.count
            guard lines.count == entries, tuples == entries else {
                throw BenchFailure("\(lines.count) lines, \(tuples) of them tuples, for \(entries) entries")
            }
            return "\(lines.count) lines, one (vendor, name, version, cartridge_version) each"
        })
        rows.append(try bench.phase("process start", "noop"))
        rows.append(try bench.command("process start", "oo-admin-cartridge --help", [admin, "--help"]) { "\($0.lines.count) lines of help" })

        printTable(rows)
    }

    private func printTable(_ rows: [Row]) {
        let floors = Dictionary(uniqueKeysWithValues: rows.compactMap { row -> (Floor, Row)? in
            switch row.phase {
            case "rescan floor": return (.rescan, row)
            case "listing floor": return (.listing, row)
            default: return nil
            }
        })
        let widths = [16, 36, 11, 11, 10, 10, 11]
        func line(_ cells: [String]) -> String {
            zip(cells, widths + [0]).map { $1 == 0 ? $0 : pad($0, $1) }.joined()
        }
        print(line(["phase", "how (each a new process)", "op", "process", "peak RSS", "op/floor", "proc/floor", "result"]))
        for row in rows {
            let floor = row.floor.flatMap { floors[$0] }
            let isFloor = row.phase.hasSuffix("floor")
            var opRatio = "-", processRatio = "-"
            if let floor, !isFloor {
                if let op = row.operation, let floorOp = floor.operation, floorOp > 0 { opRatio = ratio(op / floorOp) }
                processRatio = ratio(row.process / floor.process)
            }
            print(line([row.phase, row.how, row.operation.map(duration) ?? "-", duration(row.process),
                        megabytes(row.peakKilobytes), opRatio, processRatio, row.result]))
        }
        print("""
            op: the operation's own time inside the process (node-bench rows only); process: fork+exec to wait4 from a small \
            launcher, as a shell runs a command, start-up and exit included; peak RSS: the process's own ru_maxrss from wait4.
            op/floor = op / floor op; proc/floor = process / floor process (each floor is timed as a whole node-bench process \
            too). Rescan floor: fstatat(AT_SYMLINK_NOFOLLOW) of every entry of CARTRIDGE_BASE_PATH, walked by descriptor, \
            plus open/read/close of every .<cv>.source stamp. Listing floor: open/read/close of every repository \
            metadata/manifest.yml. Both single-threaded.
            """)
    }

    private func ratio(_ value: Double) -> String { format2(value) + "x" }

    private func duration(_ seconds: Double) -> String { seconds >= 1 ? format2(seconds) + " s" : milliseconds(seconds) }
}

/// Runs the rows of `RepositoryBench`: `runs` fresh processes each, medians.
struct Bench {
    let base: String
    let repository: String
    let work: String
    let runs: Int
    /// The whole environment of every child, so none inherits the caller's (OPENSHIFT_NODE_ROOT above all).
    let environment = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]

    /// A `node-bench phase` row; `expect` must appear in the phase's result.
    func phase(_ label: String, _ phase: String, fresh: Bool = false, floor: RepositoryBench.Floor? = nil,
               expect: String? = nil) throws -> RepositoryBench.Row {
        let process = TimedProcess(argv: [selfExecutable(), "phase", phase, "--base", base, "--repository", repository],
                                   environment: environment, stderrPath: work + "/phase.err")
        var operations: [Double] = [], processes: [Double] = [], peaks: [Double] = []
        var result = ""
        for _ in 0..<runs {
            if fresh { TestFiles.remove(repository) }
            let run = try process.runChecked()
            let fields = run.text.split(separator: "\t", maxSplits: 1)
            guard fields.count == 2, let operation = Double(fields[0]) else {
                throw BenchFailure("phase \(phase) printed: \(run.text)")
            }
            result = fields[1].trimmed(while: \.isNewline)
            if let expect, !result.contains(expect) { throw BenchFailure("\(label): expected \(expect), got \(result)") }
            operations.append(operation)
            processes.append(run.seconds)
            peaks.append(Double(run.peakKilobytes))
        }
        return .init(phase: label, how: "node-bench phase \(phase)", operation: median(operations), process: median(processes),
                     peakKilobytes: Int(median(peaks)), floor: floor, result: result)
    }

    /// A real command's row; `check` throws when a run's output is wrong, else returns the result shown.
    func command(_ label: String, _ how: String, _ argv: [String], floor: RepositoryBench.Floor? = nil,
                 check: (TimedProcess.Run) throws -> String) throws -> RepositoryBench.Row {
        let process = TimedProcess(argv: argv, environment: environment, stderrPath: work + "/command.err")
        var processes: [Double] = [], peaks: [Double] = []
        var result = ""
        for _ in 0..<runs {
            let run = try process.runChecked()
            do {
                result = try check(run)
            } catch {
                throw BenchFailure("\(argv.joined(separator: " ")): \(error)")
            }
            processes.append(run.seconds)
            peaks.append(Double(run.peakKilobytes))
        }
        return .init(phase: label, how: how, operation: nil, process: median(processes), peakKilobytes: Int(median(peaks)),
                     floor: floor, result: result)
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
                for item in report.items {
                    if case .failed(let reason) = item.outcome { throw BenchFailure("rescan failed for \(item.source): \(reason)") }
                }
                result = "\(report.installed) installed, \(report.unchanged) unchanged, \(report.failed) failed, \(report.entryCount) entries"
            case "load":
                let report = try repo.load()
                result = "\(report.entryCount) entries, \(report.problems.count) problems"
            case "list":
                try repo.load()
                let text = repo.snapshot.listing
                result = "\(text.utf8.count) bytes of listing"
            case "floor-rescan":
                let totals = RepositoryFloor.rescan(base: base, repository: repository)
                result = "\(totals.entries) entries lstat'd, \(totals.files) stamps read (\(totals.bytes) bytes)"
            case "floor-list":
                let totals = RepositoryFloor.listing(repository: repository)
                result = "\(totals.files) manifests read (\(totals.bytes / 1024) KB)"
            case "noop":
                result = "start and exit only"
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

func format2(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    return "\(hundredths / 100).\(String(abs(hundredths) % 100 + 100).dropFirst())"
}

func format1(_ value: Double) -> String {
    let tenths = (value * 10).rounded()
    return "\(Int(tenths) / 10).\(abs(Int(tenths)) % 10)"
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
