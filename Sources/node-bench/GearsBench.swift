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
struct GearsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gears", abstract: "Create, configure and destroy gears; report medians, p99 and throughput.")

    @Option(help: "How many gears.") var count = 100
    @Option(help: "Parallel workers for the parallel phase.") var parallel = 8
    @Flag(help: "Use the sandbox plugin (no root needed).") var sandbox = false

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
        var uuids: [String] = []
        for i in 0..<count {
            let uuid = "bench\(i)"
            creates.append(seconds(try clock.measure { try manager.create(GearCreateRequest(uuid: uuid)) }))
            uuids.append(uuid)
        }
        let rss = residentKilobytes()
        for uuid in uuids { destroys.append(seconds(try clock.measure { try manager.destroy(uuid) })) }
        report("create (empty gear)", creates)
        report("destroy (empty gear)", destroys)

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

    func report(_ label: String, _ values: [Double]) {
        let sorted = values.sorted()
        let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
        print(pad(label, 24) + "median \(format(median(values)))  p99 \(format(p99))  (n=\(values.count))")
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
