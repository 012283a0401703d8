import ArgumentParser
import Foundation
import Gears
import NodeCLI
import NodeConfig
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench ready --gears N --cartridges M`: how long `openshift-node run` takes from its
/// start (fork and exec) to `READY=1` on a `NOTIFY_SOCKET`, as systemd sees it, on a sandbox node
/// with N gears and M cartridges (an unchanged repository: the restart case). Beside it, in the
/// same run, the whole-process times of the two commands that do the same reads alone:
/// `openshift-node rescan` (the start rescan) and `oo-admin-ctl-gears list` (every gear's record).
struct ReadyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ready",
        abstract: "Daemon start to READY=1 (sd_notify) with N gears and M cartridges, beside rescan and gear listing.")

    @Option(help: "Gears on the node.") var gears = 1000
    @Option(help: "Cartridges in the base path.") var cartridges = 20
    @Option(help: "Measured starts (each followed by SIGTERM and exit).") var runs = 10

    func run() throws {
        guard gears >= 0, cartridges >= 1, runs >= 1 else { throw ValidationError("gears >= 0, cartridges >= 1, runs >= 1") }
        let node = siblingPath("openshift-node")
        let work = TestFiles.temporaryDirectory("ready-bench")
        chmod(work, 0o755)
        defer { TestFiles.remove(work) }
        let root = work + "/sb"
        let base = work + "/cartridges"
        for index in 0..<cartridges {
            var builder = CartridgeBuilder(name: "bench\(index)", versions: ["1.0", "2.0", "3.0"])
            builder.files["template/index.html"] = String(repeating: "x", count: 4096)
            _ = try builder.write(into: base)
        }
        let config = work + "/node.conf"
        try TestFiles.write(config, "FRONTEND_WAKE_PORT=0\nAGENT_TRANSPORTS=local\nOPENSHIFT_FRONTEND_HTTP_PLUGINS=\n"
                                + "GEAR_MIN_UID=20000\nGEAR_MAX_UID=\(20000 + max(gears, 1) + 100)\n")
        let sandbox = ["--root", root, "--cartridge-base-path", base, "--config", config]
        let rescan = try ProcessRunner.run([node, "rescan"] + sandbox)
        guard rescan.status == 0 else { throw ValidationError("rescan failed: \(rescan.stderr)") }

        var options = NodeOptions()
        options.root = root
        options.config = config
        options.cartridgeBasePath = base
        let services = try NodeServices(layout: try options.layout())
        let clock = ContinuousClock()
        let creating = clock.now
        for index in 0..<gears { try services.gears.create(GearCreateRequest(uuid: "ready\(index)")) }
        print("node-bench ready: \(gears) gears (created in \(format(clock.now - creating))), \(cartridges) cartridges "
            + "x 3 versions, sandbox, \(node); \(runs) runs each, whole processes")

        var ready: [Duration] = []
        var exits: [Duration] = []
        for run in 0..<runs {
            let notify = try NotifySocket(path: work + "/notify\(run)")
            let started = clock.now
            let pid = try ProcessRunner.spawn([node, "run"] + sandbox, stdout: work + "/out", stderr: work + "/log",
                                              environment: ["NOTIFY_SOCKET": notify.path])
            while !notify.fields.contains("READY=1") {
                if clock.now - started > .seconds(120) {
                    kill(pid, SIGKILL)
                    throw ValidationError("no READY=1 within 120 s: \(TestFiles.read(work + "/log") ?? "")")
                }
                usleep(200)
            }
            ready.append(clock.now - started)
            if run == 0, let status = notify.fields.last(where: { $0.hasPrefix("STATUS=") }) { print("  \(status)") }
            let stopping = clock.now
            kill(pid, SIGTERM)
            _ = ProcessRunner.wait(pid)
            exits.append(clock.now - stopping)
        }
        let rescans = try (0..<runs).map { _ in try timed { try ProcessRunner.run([node, "rescan"] + sandbox) } }
        let lists = try (0..<runs).map { _ in try timed { try ProcessRunner.run([siblingPath("oo-admin-ctl-gears"), "list"] + sandbox) } }
        let truths = try (0..<runs).map { _ in try timed { try ProcessRunner.run(["/bin/true"]) } }
        print(pad("what", 44) + pad("median", 12) + pad("min", 12) + "max")
        for (label, times) in [("openshift-node run: start to READY=1", ready), ("  SIGTERM to exit", exits),
                               ("openshift-node rescan (unchanged)", rescans), ("oo-admin-ctl-gears list", lists),
                               ("/bin/true (process floor)", truths)] {
            let sorted = times.sorted()
            print(pad(label, 44) + pad(format(sorted[sorted.count / 2]), 12) + pad(format(sorted[0]), 12) + format(sorted[sorted.count - 1]))
        }
    }

    private func timed(_ body: () throws -> ProcessRunner.Result) throws -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        let result = try body()
        guard result.status == 0 else { throw ValidationError("failed: \(result.stderr)") }
        return clock.now - started
    }
}
