import ArgumentParser
import Cartridges
import Containment
import Gears
import Logging
import NodeConfig
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench snapshot --size-mb 100` (root: a real gear): `gear snapshot` and `gear restore`,
/// run as the gear's user exactly as over SSH, against plain `tar czf -` / `tar xzf -` of the
/// same tree by the same user, alternating in the same run; medians of `--runs`.
///
/// The gear has no cartridge, so no control hook runs: the figures compare the archive paths
/// (ours: tar with the exclusions; gzip -dc + header checks + staging + renames) with tar alone.
/// The tree: many small text-like files and a few large ones (random, repetitive, mixed).
struct SnapshotBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Snapshot and restore throughput of a gear vs plain tar czf / tar xzf of the same tree.")

    @Option(help: "Size of the gear's data, in MB.") var sizeMb = 100
    @Option(help: "Runs per measurement (the median is reported).") var runs = 3

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("node-bench snapshot creates a real gear: run it as root") }
        let work = TestFiles.temporaryDirectory("snapshot-bench")
        chmod(work, 0o755)
        defer { TestFiles.remove(work) }
        let gearBase = work + "/gears"
        mkdir(gearBase, 0o755)
        let configuration = try NodeConfiguration(parsing: "GEAR_MIN_UID=47000\nGEAR_MAX_UID=49999\nGEAR_SHELL=/bin/sh\nOPENSHIFT_CGROUP_ROOT=openshift-bench\n",
                                                  file: "bench node.conf")
        let repository = CartridgeRepository(configuration: .init(path: work + "/repository", cartridgeBasePath: work + "/none"))
        var quiet = Logger(label: "node-bench")
        quiet.logLevel = .warning
        let plugin = SELinuxContainer(configuration: configuration, gearBaseDir: gearBase, limits: ResourceLimits(), gearExec: siblingPath("oo-gear-exec"))
        let manager = GearManager(configuration: configuration, gearBaseDir: gearBase, plugin: plugin, repository: repository, logger: quiet)
        let gear = try manager.create(GearCreateRequest(uuid: "snapbench"))
        defer { _ = try? manager.destroy(gear.uuid) }
        let data = gear.home + "/app-root/data"
        let (files, bytes) = try generate(into: data, megabytes: sizeMb)
        _ = try ProcessRunner.run(["/bin/chown", "-R", "\(gear.identity.uid):\(gear.identity.gid)", data])
        var environment = manager.environment(gear, cartridge: nil)
        environment["PATH"] = "/usr/bin:/bin"
        let asGear = ["/usr/bin/setpriv", "--reuid=\(gear.identity.uid)", "--regid=\(gear.identity.gid)", "--clear-groups", "--"]
        let gearTool = siblingPath("gear")
        let archive = work + "/snapshot.tar.gz"
        let scratch = work + "/extract"
        mkdir(scratch, 0o755)
        chown(scratch, gear.identity.uid, gear.identity.gid)
        chown(work, gear.identity.uid, gear.identity.gid)
        print("node-bench snapshot: \(files) files, \(format1(Double(bytes) / 1e6)) MB of data in app-root/data; \(runs) runs, median shown")

        var ours: [Measured] = [], plain: [Measured] = []
        for _ in 0..<runs {
            ours.append(try timed(asGear + [gearTool, "snapshot"], environment: environment, stdin: "/dev/null", stdout: archive, directory: gear.home))
            plain.append(try timed(asGear + ["/bin/tar", "-czf", "-", "./snapbench"], environment: environment, stdin: "/dev/null",
                                   stdout: work + "/plain.tar.gz", directory: gearBase))
        }
        var st = stat()
        stat(archive, &st)
        let archiveBytes = Int(st.st_size)
        stat(work + "/plain.tar.gz", &st)
        row("snapshot", ours, plain, bytes: bytes, note: "archive \(format1(Double(archiveBytes) / 1e6)) MB (plain tar: \(format1(Double(st.st_size) / 1e6)) MB)")

        ours = []
        plain = []
        for _ in 0..<runs {
            clear(data)
            ours.append(try timed(asGear + [gearTool, "restore"], environment: environment, stdin: archive, stdout: "/dev/null", directory: gear.home))
            TestFiles.remove(scratch + "/snapbench")
            plain.append(try timed(asGear + ["/bin/tar", "-xzf", "-"], environment: environment, stdin: archive, stdout: "/dev/null", directory: scratch))
        }
        row("restore", ours, plain, bytes: bytes, note: "into an empty app-root/data; plain tar extracts the whole archive")
        ours = []
        plain = []
        for _ in 0..<runs {
            ours.append(try timed(asGear + [gearTool, "restore"], environment: environment, stdin: archive, stdout: "/dev/null", directory: gear.home))
            plain.append(try timed(asGear + ["/bin/tar", "-xzf", "-"], environment: environment, stdin: archive, stdout: "/dev/null", directory: scratch))
        }
        row("restore", ours, plain, bytes: bytes, note: "over the previous restore (ours moves it aside and removes it; tar unlinks each file it replaces)")
    }

    struct Measured {
        var wall: Double
        /// User + system time of the command and every process it waited for.
        var cpu: Double
    }

    func row(_ label: String, _ ours: [Measured], _ plain: [Measured], bytes: Int, note: String) {
        let a = median(ours.map(\.wall)), b = median(plain.map(\.wall))
        let ca = median(ours.map(\.cpu)), cb = median(plain.map(\.cpu))
        print(pad(label, 10) + "wall: gear " + pad(format(a), 9) + "tar " + pad(format(b), 9) + pad(format1(a / b * 100) + "%", 8)
            + "cpu: gear " + pad(format(ca), 9) + "tar " + pad(format(cb), 9) + pad(format1(ca / cb * 100) + "%", 8)
            + "gear \(format1(Double(bytes) / 1e6 / a)) MB/s; " + note)
    }

    /// Empties a directory (as root, untimed).
    func clear(_ directory: String) {
        for name in FileSystem.entries(directory) ?? [] { TestFiles.remove(directory + "/" + name) }
    }

    /// Runs argv with files as stdin/stdout; its wall time. A failure stops the benchmark.
    func timed(_ argv: [String], environment: [String: String], stdin: String, stdout: String, directory: String) throws -> Measured {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        posix_spawn_file_actions_addopen(&actions, 2, "/tmp/node-bench-snapshot.err", O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        // setpriv ... -- env --chdir=<directory> <program>: the same for every command measured.
        let argv = Array(argv.prefix(5)) + ["/usr/bin/env", "--chdir=" + directory] + argv.dropFirst(5)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        let start = monotonicSeconds()
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv) == 0 else { throw ValidationError("cannot start \(argv)") }
        var raw: Int32 = 0
        var usage = rusage()
        while wait4(pid, &raw, 0, &usage) < 0 && errno == EINTR {}
        let elapsed = monotonicSeconds() - start
        let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        guard status == 0 else {
            throw ValidationError("\(argv.dropFirst(7).joined(separator: " ")) failed (\(status)): \(TestFiles.read("/tmp/node-bench-snapshot.err") ?? "")")
        }
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return Measured(wall: elapsed, cpu: cpu)
    }

    /// About `megabytes` MB: 60% in small files (512 B to 24 KB, text-like), the rest in three
    /// large ones (random, repetitive, half and half). Deterministic.
    func generate(into directory: String, megabytes: Int) throws -> (files: Int, bytes: Int) {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed ^= seed << 13
            seed ^= seed >> 7
            seed ^= seed << 17
            return seed
        }
        let words = ["gear", "node", "cartridge", "deploy", "snapshot", "restore", "the", "a", "of", "data", "\n", "openshift", "1234", "x"]
        let total = megabytes * 1_000_000
        var written = 0, files = 0
        while written < total * 6 / 10 {
            let size = 512 + Int(next() % 24_000)
            var text: [UInt8] = []
            text.reserveCapacity(size)
            while text.count < size {
                let r = next()
                text += Array(words[Int(r % UInt64(words.count))].utf8) + [UInt8(ascii: " ")]
                if r % 11 == 0 { text += Array(String(r % 100_000).utf8) }
            }
            let path = directory + "/dir\(files / 200)/sub\(files % 7)/file\(files).txt"
            try TestFiles.makeDirectories(directory + "/dir\(files / 200)/sub\(files % 7)")
            try TestFiles.write(path, bytes: Array(text.prefix(size)))
            written += size
            files += 1
        }
        let large = (total - written) / 3
        var random = [UInt8](repeating: 0, count: large)
        for i in stride(from: 0, to: large - 8, by: 8) { withUnsafeBytes(of: next()) { for j in 0..<8 { random[i + j] = $0[j] } } }
        let repetitive = (0..<large).map { UInt8(truncatingIfNeeded: ($0 / 64) % 251) }
        let mixed = Array(random.prefix(large / 2)) + Array(repetitive.prefix(large - large / 2))
        try TestFiles.makeDirectories(directory + "/large")
        for (name, content) in [("random.bin", random), ("repetitive.bin", repetitive), ("mixed.bin", mixed)] {
            try TestFiles.write(directory + "/large/" + name, bytes: content)
        }
        return (files + 3, written + 3 * large)
    }
}
