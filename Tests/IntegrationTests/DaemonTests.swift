import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `openshift-node` in sandbox mode: rescans at start, by itself on changes, and on SIGHUP.
@Suite("daemon rescans", .serialized)
struct DaemonTests {
    let node = ScratchNode("daemon-test")
    var root: String { node.root + "/sandbox" }

    func writeConfig(_ text: String) throws -> String {
        let path = node.root + "/node.conf"
        try TestFiles.write(path, text)
        return path
    }

    @Test("a cartridge copied into the base path is listed without a restart", .timeLimit(.minutes(3)))
    func watchedRescan() async throws {
        defer { node.destroy() }
        try CartridgeBuilder(name: "first").write(into: node.basePath)
        let daemon = try Daemon(root: root, basePath: node.basePath, config: try writeConfig("CARTRIDGE_RESCAN_DEBOUNCE_MS=200\nFRONTEND_WAKE_PORT=0\n"))
        #expect(await eventually(within: 20) { daemon.rescans >= 1 }, "start rescan: \(daemon.logText)")
        #expect(daemon.logText.contains("installed cartridge (redhat, first, 0.1, 0.0.1) from \(node.basePath)/first"))
        #expect(try listing(root: root, basePath: node.basePath) == "(redhat, first, 0.1, 0.0.1)\n")

        try deliver(CartridgeBuilder(name: "second", versions: ["3.11"]), to: node.basePath, staging: node.root + "/staging")
        #expect(try await eventually(within: 15) {
            try listing(root: root, basePath: node.basePath).contains("(redhat, second, 3.11, 0.0.1)")
        }, "watched rescan: \(daemon.logText)")

        // A broken package is reported and the daemon carries on.
        var broken = CartridgeBuilder(name: "third")
        broken.extraManifest = "Name: Third\n"
        try deliver(broken, to: node.basePath, staging: node.root + "/staging")
        #expect(await eventually(within: 15) { daemon.logText.contains("failed to install cartridge from \(node.basePath)/third") })
        #expect(daemon.logText.contains("Name 'Third' does not match pattern"))

        // An update in place (a new cartridge version) is seen too.
        var updated = CartridgeBuilder(name: "first", cartridgeVersion: "0.0.2")
        updated.files = [:]
        try TestFiles.write(node.basePath + "/first/metadata/manifest.yml", updated.manifest)
        #expect(try await eventually(within: 15) {
            try listing(root: root, basePath: node.basePath).contains("(redhat, first, 0.1, 0.0.2)")
        })
        #expect(daemon.isRunning)
        #expect(daemon.stop() == 0, "SIGTERM is a clean shutdown: \(daemon.logText)")
    }

    /// node.conf files (as bytes) the daemon must refuse, with the end of the first stderr line.
    static let badConfigurations: [([UInt8], String)] = [
        (Array("FRONTEND_WAKE_PORT=0\nGEAR_MIN_UID=-5\nGEAR_MAX_UID=-1\n".utf8),
         "2: GEAR_MIN_UID must be an integer from 1 to 4294967294 (a uid), found '-5'"),
        (Array("GEAR_MIN_UID=3000\nGEAR_MAX_UID=2000\n".utf8), "2: GEAR_MAX_UID (2000) is below GEAR_MIN_UID (3000)"),
        (Array("GEAR_BASE_DIR=srv/gears\n".utf8), "1: GEAR_BASE_DIR must be an absolute path (starting with /), found 'srv/gears'"),
        (Array("# paths\nGEAR_BASE_DIR=\"/srv/".utf8) + [0] + Array("gears\"\n".utf8), "2: the value of GEAR_BASE_DIR contains a NUL byte"),
        (Array("GEAR_BASE_DIR=/srv/".utf8) + [0xff] + Array("\n".utf8), "1: the value of GEAR_BASE_DIR is not valid UTF-8"),
    ]

    @Test("a bad node.conf stops the daemon before it starts, with file, line and reason", .timeLimit(.minutes(3)),
          arguments: badConfigurations)
    func badConfiguration(bytes: [UInt8], message: String) async throws {
        defer { node.destroy() }
        let config = node.root + "/node.conf"
        try TestFiles.write(config, bytes: bytes)
        let daemon = try Daemon(root: root, basePath: node.basePath, config: config)
        #expect(await eventually(within: 20) { !daemon.isRunning }, "the daemon must not start: \(daemon.logText)")
        #expect(daemon.stop() != 0)
        #expect(daemon.logText.hasPrefix("\(config):\(message)"), "\(daemon.logText)")
        #expect(!TestFiles.exists(root + "/var/lib/openshift"), "nothing was created")
    }

    @Test("SIGHUP rescans", .timeLimit(.minutes(3)))
    func sighup() async throws {
        defer { node.destroy() }
        let daemon = try Daemon(root: root, basePath: node.basePath, extraArguments: ["--no-watch", "--no-wake"])
        #expect(await eventually(within: 20) { daemon.rescans >= 1 })
        try deliver(CartridgeBuilder(name: "late"), to: node.basePath, staging: node.root + "/staging")
        try await Task.sleep(for: .seconds(1))
        #expect(try listing(root: root, basePath: node.basePath) == "", "with --no-watch nothing happens until the signal")
        daemon.signal(SIGHUP)
        #expect(try await eventually(within: 15) {
            try listing(root: root, basePath: node.basePath) == "(redhat, late, 0.1, 0.0.1)\n"
        }, "\(daemon.logText)")
        #expect(daemon.logText.contains("trigger: SIGHUP"))
        #expect(daemon.stop() == 0)
    }

    @Test("a missing base path is reported; the daemon runs and picks it up when it appears", .timeLimit(.minutes(3)))
    func missingBasePath() async throws {
        defer { node.destroy() }
        let base = node.root + "/later/cartridges"
        try TestFiles.makeDirectories(node.root + "/later")
        let daemon = try Daemon(root: root, basePath: base, config: try writeConfig("CARTRIDGE_RESCAN_DEBOUNCE_MS=100\nFRONTEND_WAKE_PORT=0\n"))
        #expect(await eventually(within: 20) { daemon.logText.contains("is not a directory") })
        try CartridgeBuilder(name: "arrives").write(into: node.root + "/staging")
        #expect(rename(node.root + "/staging", base) == 0)
        #expect(try await eventually(within: 15) {
            try listing(root: root, basePath: base) == "(redhat, arrives, 0.1, 0.0.1)\n"
        }, "\(daemon.logText)")
        #expect(daemon.stop() == 0)
    }
}
