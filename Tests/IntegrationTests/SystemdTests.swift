import Foundation
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The daemon under systemd: `Type=notify` readiness, status, watchdog and stopping through
/// `NOTIFY_SOCKET`; the units as systemd reads them; the boot unit's bulk gear commands.
@Suite("systemd: notify, units, gears at boot")
struct SystemdTests {
    static let repositoryRoot = String(#filePath[..<#filePath.range(of: "/Tests/")!.lowerBound])
    static let cartridges = repositoryRoot + "/cartridges"

    @Test("the daemon says READY=1 after its first rescan with its agent socket bound, then STATUS, WATCHDOG and STOPPING, all from its own pid",
          .timeLimit(.minutes(2)))
    func notifyLifecycle() async throws {
        let node = ScratchNode("systemd-notify")
        defer { node.destroy() }
        let root = node.root + "/sb"
        let config = node.root + "/node.conf"
        try TestFiles.write(config, "FRONTEND_WAKE_PORT=0\nAGENT_TRANSPORTS=local\nOPENSHIFT_FRONTEND_HTTP_PLUGINS=\n"
                                + "CARTRIDGE_RESCAN_DEBOUNCE_MS=200\n")
        let sandbox = ["--root", root, "--cartridge-base-path", Self.cartridges, "--config", config]
        let notify = try NotifySocket(path: node.root + "/notify")
        let envFile = node.root + "/hook.env"
        let daemon = try Daemon(root: root, basePath: Self.cartridges, config: config,
                                environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])

        #expect(await notify.waitFor(within: 60) { $0 == "READY=1" }, "\(notify.fields) \(daemon.logText)")
        // What READY promises already holds when it arrives: the repository is scanned and the
        // agent answers on its socket.
        #expect(daemon.rescans >= 1, "\(daemon.logText)")
        #expect(try listing(root: root, basePath: Self.cartridges).contains("(redhat, mock, 0.1, 0.0.1)"))
        let echo = try ProcessRunner.node("oo-devel-node", ["agent", "echo", "msg=ready"] + sandbox)
        #expect(echo.status == 0 && echo.stdout.contains("\"route\":\"daemon\""), "\(echo)")
        let entries = try listing(root: root, basePath: Self.cartridges).split(separator: "\n").count
        #expect(notify.fields.contains { $0.hasPrefix("STATUS=\(entries) cartridges in the repository, 0 gears") }, "\(notify.fields)")
        #expect(notify.fields.contains("MAINPID=\(daemon.pid)"))
        // Once ready, it handed its start-up code back to the kernel (ProgramText), and what follows
        // (an echo, an install, a configure, a rescan) runs on pages faulted back in.
        #expect(await eventually(within: 30) {
            daemon.logText.split(separator: " ").contains { field in
                field.hasPrefix("startup_code_released_kb=") && (Int(field.dropFirst("startup_code_released_kb=".count)) ?? 0) > 0
            }
        }, "\(daemon.logText)")

        // The watchdog is pinged at half of WATCHDOG_USEC, for as long as the daemon runs.
        #expect(await eventually(within: 30) { notify.fields.filter { $0 == "WATCHDOG=1" }.count >= 4 }, "\(notify.fields)")

        // A gear's hooks do not inherit the socket: a tenant cannot tell systemd anything.
        var spy = CartridgeBuilder(name: "envspy")
        spy.files["bin/setup"] = "#!/bin/sh\nenv > \(envFile)\n"
        let spySource = try spy.write(into: node.root + "/extra")
        let install = try ProcessRunner.node("oo-admin-cartridge", ["-a", "install", "-s", spySource, "--mco"] + sandbox)
        #expect(install.status == 0, "\(install)")
        let create = try ProcessRunner.node("oo-devel-node", ["app-create", "--with-container-uuid", "notifygear1"] + sandbox)
        #expect(create.status == 0, "\(create)")
        let configure = try ProcessRunner.node("oo-devel-node", ["agent", "cartridge_do", "action=configure", "cartridge=envspy",
                                                                 #"args={"--with-container-uuid":"notifygear1","--cart-name":"envspy"}"#] + sandbox)
        #expect(configure.status == 0 && configure.stdout.contains("\"route\":\"daemon\""), "\(configure)")
        let hookEnvironment = try #require(TestFiles.read(envFile), "the hook ran")
        #expect(!hookEnvironment.contains("NOTIFY_SOCKET") && !hookEnvironment.contains("WATCHDOG_"), "\(hookEnvironment)")

        // A rescan refreshes the status: the gear is counted.
        daemon.signal(SIGHUP)
        #expect(await notify.waitFor(within: 30) { $0.hasPrefix("STATUS=") && $0.contains(" 1 gear;") }, "\(notify.fields)")

        #expect(await daemon.stop(within: 30) == 0, "\(daemon.logText)")
        #expect(notify.fields.contains("STOPPING=1"), "\(notify.fields)")
        #expect(notify.fields.firstIndex(of: "READY=1")! < notify.fields.firstIndex(of: "STOPPING=1")!)
        let senders = Set(notify.messages.map(\.pid))
        #expect(senders == [daemon.pid], "every notification comes from the daemon's own pid (NotifyAccess=main): \(senders)")
        _ = try ProcessRunner.node("oo-devel-node", ["app-destroy", "--with-container-uuid", "notifygear1"] + sandbox)
    }

    @Test("another user (a gear's) can neither read the daemon's NOTIFY_SOCKET nor speak as the daemon: its datagrams carry its own pid, which NotifyAccess=main drops",
          .enabled(if: Prerequisites.rootOrCI), .timeLimit(.minutes(3)))
    func notifyAsAnotherUser() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = ScratchNode("systemd-attack")
        defer { node.destroy() }
        chmod(node.root, 0o755)
        let config = node.root + "/node.conf"
        try TestFiles.write(config, "FRONTEND_WAKE_PORT=0\nAGENT_TRANSPORTS=\n")
        let notify = try NotifySocket(path: node.root + "/notify")
        let daemon = try Daemon(root: node.root + "/sb", basePath: Self.cartridges, config: config,
                                environment: ["NOTIFY_SOCKET": notify.path])
        #expect(await notify.waitFor(within: 60) { $0 == "READY=1" }, "\(daemon.logText)")
        let asUser = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        // The daemon's environment (where systemd's variables were) is root's to read.
        let environ = try ProcessRunner.run(asUser + ["/bin/cat", "/proc/\(daemon.pid)/environ"])
        #expect(environ.status != 0 && !environ.stdout.contains("NOTIFY_SOCKET"), "\(environ)")
        // A datagram sent to the socket as the daemon would: the kernel stamps the sender's pid.
        let forged = try ProcessRunner.run(asUser + ["/usr/bin/python3", "-c",
            "import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
            + "s.sendto(b'STOPPING=1\\nMAINPID=' + sys.argv[2].encode(), sys.argv[1])", notify.path, "\(daemon.pid)"])
        #expect(forged.status == 0, "\(forged)")
        #expect(await eventually(within: 10) { notify.messages.contains { $0.fields.contains("STOPPING=1") } })
        let forgedMessages = notify.messages.filter { $0.fields.contains("STOPPING=1") }
        #expect(forgedMessages.allSatisfy { $0.pid != daemon.pid && $0.pid > 0 }, "\(forgedMessages)")
        #expect(notify.messages.filter { $0.pid == daemon.pid }.allSatisfy { !$0.fields.contains("STOPPING=1") })
        #expect(await daemon.stop(within: 30) == 0)
    }

    @Test("a daemon that cannot start never says READY=1", .timeLimit(.minutes(3)))
    func noReadyOnFailure() async throws {
        let node = ScratchNode("systemd-noready")
        defer { node.destroy() }
        let config = node.root + "/node.conf"
        try TestFiles.write(config, "GEAR_MIN_UID=3000\nGEAR_MAX_UID=2000\n")
        let notify = try NotifySocket(path: node.root + "/notify")
        let daemon = try Daemon(root: node.root + "/sb", basePath: Self.cartridges, config: config,
                                environment: ["NOTIFY_SOCKET": notify.path])
        #expect(await eventually(within: 20) { !daemon.isRunning }, "\(daemon.logText)")
        #expect(daemon.stop() != 0)
        #expect(!notify.fields.contains("READY=1"), "\(notify.fields)")
    }

    @Test("systemd-analyze verify accepts the units, run against the built programs",
          .enabled(if: access("/usr/bin/systemd-analyze", X_OK) == 0 || Prerequisites.inCI))
    func unitsVerify() throws {
        let node = ScratchNode("systemd-units")
        defer { node.destroy() }
        var copies: [String] = []
        for name in ["openshift-node.service", "openshift-gears.service"] {
            let text = try #require(TestFiles.read(Self.repositoryRoot + "/systemd/" + name))
            #expect(text.contains("/usr/sbin/"), "the unit runs the packaged programs")
            // The same unit, with the programs where this build put them.
            let copy = node.root + "/" + name
            try TestFiles.write(copy, text.replacingOccurrences(of: "/usr/sbin/", with: ProcessRunner.productsDirectory + "/"))
            copies.append(copy)
        }
        let verify = try ProcessRunner.run(["/usr/bin/systemd-analyze", "verify", "--man=no"] + copies)
        // Other packages' units on the machine may draw warnings of their own; ours must draw none.
        let ours = verify.stderr.split(separator: "\n").filter { line in copies.contains { line.contains($0) } || line.contains("openshift") }
        #expect(verify.status == 0 && ours.isEmpty && verify.stdout.isEmpty, "\(verify)")
        let unit = try #require(TestFiles.read(Self.repositoryRoot + "/systemd/openshift-node.service"))
        for line in ["Type=notify", "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure"] {
            #expect(unit.contains("\n" + line + "\n"), "\(line)")
        }
        #expect(unit.contains("\nWatchdogSec="))
        let gears = try #require(TestFiles.read(Self.repositoryRoot + "/systemd/openshift-gears.service"))
        #expect(gears.contains("\nAfter=openshift-node.service\n") && gears.contains("\nExecStart=/usr/sbin/oo-admin-ctl-gears startall"))
    }

    @Test("startall and stopall work on every gear, a bounded number at once; a gear its user stopped stays stopped",
          .timeLimit(.minutes(2)))
    func bulkGears() async throws {
        let node = ScratchNode("systemd-gears")
        defer { node.destroy() }
        let config = try sandboxConfig(node)
        let sandbox = ["--root", node.root + "/sandbox", "--cartridge-base-path", Self.cartridges, "--config", config]
        func run(_ tool: String, _ arguments: [String]) throws -> ProcessRunner.Result {
            try ProcessRunner.node(tool, arguments + sandbox)
        }
        #expect(try run("openshift-node", ["rescan"]).status == 0)
        let uuids = (1...5).map { "bulkgear\($0)" }
        for uuid in uuids {
            #expect(try run("oo-devel-node", ["app-create", "--with-container-uuid", uuid]).status == 0)
            #expect(try run("oo-devel-node", ["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        }
        struct Status: Decodable { var uuid: String; var state: String; var stop_lock: Bool }
        func states() throws -> [String: Status] {
            let decoded = try JSONDecoder().decode([Status].self, from: Data(try run("oo-admin-ctl-gears", ["status", "--json"]).stdout.utf8))
            return Dictionary(uniqueKeysWithValues: decoded.map { ($0.uuid, $0) })
        }

        let stop = try run("oo-admin-ctl-gears", ["stopall", "-n", "2"])
        #expect(stop.status == 0, "\(stop)")
        #expect(Set(stop.stdout.split(separator: "\n")) == Set(uuids.map { "[ OK ] stop \($0)" }), "\(stop.stdout)")
        #expect(try states().values.allSatisfy { $0.state == "stopped" && !$0.stop_lock }, "a system stop sets no stop lock")

        // The user of gear 3 stops it: the boot start leaves it stopped.
        #expect(try run("oo-admin-ctl-gears", ["stop", "bulkgear3"]).status == 0)
        let start = try run("oo-admin-ctl-gears", ["startall", "--processes", "3"])
        #expect(start.status == 0, "\(start)")
        let after = try states()
        for uuid in uuids where uuid != "bulkgear3" { #expect(after[uuid]?.state == "started", "\(uuid): \(String(describing: after[uuid]))") }
        #expect(after["bulkgear3"]?.state == "stopped" && after["bulkgear3"]?.stop_lock == true)

        let refused = try run("oo-admin-ctl-gears", ["startall", "bulkgear1"])
        #expect(refused.status != 0 && refused.stderr.contains("startall acts on every gear and takes no uuids"), "\(refused)")
        let zero = try run("oo-admin-ctl-gears", ["startall", "-n", "0"])
        #expect(zero.status != 0 && zero.stderr.contains("--processes must be from 1 to 256"), "\(zero)")
        for uuid in uuids { _ = try run("oo-devel-node", ["app-destroy", "--with-container-uuid", uuid]) }
    }
}
