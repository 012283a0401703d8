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

/// `node-bench gears --count N` (root for node mode; `--sandbox` without root): create and
/// destroy times for empty gears, configure+start of mock, parallel creates per second, and this
/// process's memory with N gears on the node.
///
/// In node mode each create and destroy is paired with its floor, measured in the same run and
/// interleaved with it (the order alternating from one gear to the next): `groupadd` + `useradd`
/// with the plugin's options for an account like the gear's, and `userdel` of it, spawned and
/// waited for directly. The ratio is what the node adds above the account tools.
struct GearsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gears", abstract: "Create, configure and destroy gears; report medians, p99 and throughput.")

    @Option(help: "How many gears.") var count = 100
    @Option(help: "Parallel workers for the parallel phase.") var parallel = 8
    @Flag(help: "Use the sandbox plugin (no root needed).") var sandbox = false
    @Flag(help: "Only create and destroy (with their floor): no configure, parallel or memory figures.") var createDestroyOnly = false

    func run() throws {
        let work = TestFiles.temporaryDirectory("gears-bench")
        chmod(work, 0o755)
        defer { TestFiles.remove(work) }
        let configuration = try NodeConfiguration(parsing: "GEAR_MIN_UID=47000\nGEAR_MAX_UID=49999\nGEAR_SHELL=/bin/sh\nOPENSHIFT_CGROUP_ROOT=openshift-bench\n",
                                                  file: "bench node.conf")
        let gearBase = work + "/gears"
        mkdir(gearBase, 0o755)
        let cartridges = String(#filePath.split(separator: "/Sources/", omittingEmptySubsequences: false)[0]) + "/cartridges"
        let repository = CartridgeRepository(configuration: .init(path: work + "/repository", cartridgeBasePath: cartridges))
        _ = repository.rescan()
        if !sandbox && geteuid() != 0 { throw ValidationError("node mode needs root; use --sandbox") }
        let plugin: any ContainerPlugin = sandbox
            ? SandboxContainer(configuration: configuration, gearBaseDir: gearBase)
            : SELinuxContainer(configuration: configuration, gearBaseDir: gearBase, limits: ResourceLimits(),
                               gearExec: siblingPath("oo-gear-exec"))
        var quiet = Logger(label: "node-bench")
        quiet.logLevel = .warning
        let manager = GearManager(configuration: configuration, gearBaseDir: gearBase, plugin: plugin, repository: repository, logger: quiet)
        let clock = ContinuousClock()
        print("node-bench gears: \(count) gears, \(plugin.name) plugin")

        var creates: [Double] = []
        var destroys: [Double] = []
        var addFloor: [Double] = []
        var removeFloor: [Double] = []
        let tools = sandbox ? nil : AccountTools(configuration: configuration, homeBase: gearBase)
        defer { tools?.removeLeftovers() }
        var uuids: [String] = []
        for i in 0..<count {
            let uuid = "bench\(i)"
            let create = { creates.append(seconds(try clock.measure { try manager.create(GearCreateRequest(uuid: uuid)) })) }
            if let tools {
                if i % 2 == 0 { try create() }
                addFloor.append(try tools.add(i))
                if i % 2 == 1 { try create() }
            } else {
                try create()
            }
            uuids.append(uuid)
        }
        let rss = residentKilobytes()
        for (i, uuid) in uuids.enumerated() {
            let destroy = { destroys.append(seconds(try clock.measure { try manager.destroy(uuid) })) }
            if let tools {
                if i % 2 == 1 { try destroy() }
                removeFloor.append(try tools.remove(i))
                if i % 2 == 0 { try destroy() }
            } else {
                try destroy()
            }
        }
        report("create (empty gear)", creates)
        if tools != nil {
            report("  groupadd+useradd", addFloor)
            print(pad("  create / floor", 24) + "\(ratio(median(creates), median(addFloor))) (medians), "
                  + "\(ratio(percentile99(creates), percentile99(addFloor))) (p99), "
                  + "\(ratio(median(zip(creates, addFloor).map { $0 / $1 }), 1)) (median of pairs)")
        }
        report("destroy (empty gear)", destroys)
        if tools != nil {
            report("  userdel", removeFloor)
            print(pad("  destroy / floor", 24) + "\(ratio(median(destroys), median(removeFloor))) (medians), "
                  + "\(ratio(percentile99(destroys), percentile99(removeFloor))) (p99), "
                  + "\(ratio(median(zip(destroys, removeFloor).map { $0 / $1 }), 1)) (median of pairs)")
        }

        if createDestroyOnly { return }

        var configureStart: [Double] = []
        for i in 0..<min(count, 20) {
            let uuid = "benchcfg\(i)"
            try manager.create(GearCreateRequest(uuid: uuid))
            configureStart.append(seconds(try clock.measure {
                _ = try manager.configure(uuid, cartridge: "mock")
                _ = try manager.control(uuid, .start)
            }))
            try manager.destroy(uuid)
        }
        report("configure+start mock", configureStart)

        let started = clock.now
        let failures = parallelRun(count: count, workers: parallel) { i in
            (try? manager.create(GearCreateRequest(uuid: "benchpar\(i)"))) != nil
        }
        let elapsed = seconds(clock.now - started)
        print(pad("parallel create", 24) + "\(format1(Double(count) / elapsed)) gears/s with \(parallel) workers (\(failures) failed)")
        let destroyStart = clock.now
        _ = parallelRun(count: count, workers: parallel) { i in (try? manager.destroy("benchpar\(i)")) != nil }
        print(pad("parallel destroy", 24) + "\(format1(Double(count) / seconds(clock.now - destroyStart))) gears/s")
        let left = manager.allGears().count
        print(pad("left behind", 24) + "\(left) gears" + (sandbox ? "" : ", \(leftoverAccounts()) accounts"))
        print(pad("memory", 24) + "\(format1(Double(rss) / 1024)) MB resident with \(count) gears created (this process)")
    }

    func validate() throws {
        if !sandbox && count > AccountTools.maxCount {
            throw ValidationError("node mode measures the account tools beside the gears: --count \(AccountTools.maxCount) at most")
        }
    }

    func report(_ label: String, _ values: [Double]) {
        print(pad(label, 24) + "median \(format(median(values)))  p99 \(format(percentile99(values)))  (n=\(values.count))")
    }

    func percentile99(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
    }

    func ratio(_ value: Double, _ floor: Double) -> String {
        guard floor > 0 else { return "-" }
        let hundredths = Int((value / floor * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)x"
    }

    func parallelRun(count: Int, workers: Int, _ body: @escaping @Sendable (Int) -> Bool) -> Int {
        let failures = Counter()
        let next = Counter()
        var threads: [pthread_t] = []
        for _ in 0..<workers {
            let box = Unmanaged.passRetained(Worker {
                while true {
                    let i = next.increment() - 1
                    if i >= count { return }
                    if !body(i) { _ = failures.increment() }
                }
            })
            var thread = pthread_t()
            pthread_create(&thread, nil, { raw in
                let worker = Unmanaged<Worker>.fromOpaque(raw!).takeRetainedValue()
                worker.body()
                return nil
            }, box.toOpaque())
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
        return failures.value
    }

    func leftoverAccounts() -> Int {
        (TestFiles.read("/etc/passwd") ?? "").split(separator: "\n").filter { $0.hasPrefix("bench") }.count
    }
}

/// The floor of a gear create and destroy: the account tools alone, with the options
/// `UnixAccounts` gives them, for accounts `benchfloor<i>` (uid and gid 49999 - i, the top of the
/// bench's uid range, far from the gears' lowest free uids; home under the gears' base, not made).
/// Each tool is spawned and waited for directly, its output discarded: nothing but its own cost.
struct AccountTools {
    static let maxCount = 1500
    let configuration: NodeConfiguration
    let homeBase: String

    func name(_ i: Int) -> String { "benchfloor\(i)" }
    func id(_ i: Int) -> UInt32 { UInt32(49_999 - i) }

    /// `groupadd` then `useradd`, in seconds.
    func add(_ i: Int) throws -> Double {
        let (name, id) = (name(i), id(i))
        guard !UnixAccounts.uidExists(id), !UnixAccounts.gidExists(id) else { throw ValidationError("uid or gid \(id) is taken: the floor needs it") }
        var useradd = ["/usr/sbin/useradd", "-u", "\(id)", "-g", "\(id)", "-d", homeBase + "/" + name,
                       "-s", configuration.string("GEAR_SHELL"), "-c", configuration.string("GEAR_GECOS"), "-M", "-N"]
        if configuration.boolean("DISABLE_PASSWORD_AGING") {
            useradd += ["-K", "PASS_MAX_DAYS=-1", "-K", "PASS_MIN_DAYS=-1", "-K", "PASS_WARN_AGE=-1"]
        }
        let groups = configuration.list("GEAR_SUPPLEMENTARY_GROUPS")
        if !groups.isEmpty { useradd += ["-G", groups.joined(separator: ",")] }
        let clock = ContinuousClock()
        return seconds(try clock.measure {
            try run(["/usr/sbin/groupadd", "-g", "\(id)", name])
            try run(useradd + [name])
        })
    }

    /// `userdel -f` (and `groupdel` when the group outlives it, as the plugin does), in seconds.
    func remove(_ i: Int) throws -> Double {
        let name = name(i)
        let clock = ContinuousClock()
        return seconds(try clock.measure {
            try run(["/usr/sbin/userdel", "-f", name])
            if UnixAccounts.groupExists(named: name) { try run(["/usr/sbin/groupdel", name]) }
        })
    }

    /// What a run stopped half way left.
    func removeLeftovers() {
        for i in 0..<Self.maxCount where UnixAccounts.user(named: name(i)) != nil || UnixAccounts.groupExists(named: name(i)) {
            try? run(["/usr/sbin/userdel", "-f", name(i)])
            if UnixAccounts.groupExists(named: name(i)) { try? run(["/usr/sbin/groupdel", name(i)]) }
        }
    }

    func run(_ argv: [String]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let (pid, rc) = Spawner.spawn(argv, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"], actions: &actions)
        guard rc == 0 else { throw ValidationError("\(argv[0]): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw ValidationError("\(argv.joined(separator: " ")) failed (wait status \(status))") }
    }
}

final class Worker: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

final class Counter: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var count = 0
    init() { pthread_mutex_init(&mutex, nil) }
    func increment() -> Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        count += 1
        return count
    }
    var value: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return count
    }
}

func residentKilobytes() -> Int {
    let status = TestFiles.read("/proc/self/status") ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

func siblingPath(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "./x"
    return String(path[..<path.lastIndex(of: "/")!]) + "/" + name
}
