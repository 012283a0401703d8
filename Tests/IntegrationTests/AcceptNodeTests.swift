import Containment
import NodeConfig
import Foundation
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `oo-accept-node` as admins and monitoring run it: `PASS` on a healthy node, and each injected
/// fault found with its own `FAIL:` line naming what is wrong, exit 1, without a change on disk.
@Suite("oo-accept-node in a sandbox")
struct AcceptNodeSandboxTests {
    @Test("a healthy sandbox node prints PASS alone and exits 0; -v names every check")
    func healthySandboxPasses() throws {
        let node = try AcceptSandbox()
        defer { node.destroy() }
        let broker = try Listener()
        try node.writeServerConfig(port: broker.port)
        let result = try node.accept()
        #expect(result.status == 0 && result.stdout == "PASS\n", "\(result.stdout)")
        #expect(result.stderr == "")
        let verbose = try node.accept(["-v"])
        #expect(verbose.status == 0)
        for check in ["node.conf", "directories", "gears", "orphan accounts and directories", "frontend routes", "cartridge repository",
                      "apache", "mcollective", "selinux, cgroups and quotas"] {
            #expect(verbose.stdout.contains("INFO: checking \(check)\n"), "\(check) in \(verbose.stdout)")
        }
        #expect(verbose.stdout.contains("broker 127.0.0.1:\(broker.port) accepts connections"))
        #expect(verbose.stdout.hasSuffix("PASS\n"))
    }

    @Test("a route missing from routes.txt is named with its gear and host name")
    func missingRoute() throws {
        let node = try AcceptSandbox()
        defer { node.destroy() }
        let routes = node.mapDirectory + "/routes.txt"
        let lines = (TestFiles.read(routes) ?? "").split(separator: "\n")
        let removed = try #require(lines.first { $0.hasPrefix("shop-acme.example.com/front1a ") }, "mock connects /front1a")
        let target = String(removed.split(separator: " ")[1].split(separator: "|")[0])
        try TestFiles.write(routes, lines.filter { $0 != removed }.map { $0 + "\n" }.joined())
        let result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: gear g1: route shop-acme.example.com/front1a -> \(target) is missing from \(routes): Apache does not serve it: "
                + "re-apply it: oo-devel-node frontend-disconnect --with-container-uuid g1 --path /front1a \(node.optionText), "
                + "then oo-devel-node frontend-connect --with-container-uuid g1 --path /front1a --target \(target) \(node.optionText)",
        ], "\(result.stdout)")
    }

    @Test("a hosts.txt record that disagrees with the route document (Apache's first lookup) is named with the repair command")
    func staleHostRecord() throws {
        let node = try AcceptSandbox()
        defer { node.destroy() }
        let hosts = node.mapDirectory + "/hosts.txt"
        let lines = (TestFiles.read(hosts) ?? "").split(separator: "\n").map(String.init)
        let record = try #require(lines.first { $0.hasPrefix("shop-acme.example.com ") }, "\(lines)")
        let good = String(record.split(separator: " ")[1])
        // The gear's path routes skipped (depth 0), and a name planted for a gear that does not exist.
        var fields = good.split(separator: "|", omittingEmptySubsequences: false)
        fields[4] = "0"
        let stale = fields.joined(separator: "|")
        try TestFiles.write(hosts, lines.map { $0 == record ? "shop-acme.example.com \(stale)" : $0 }.map { $0 + "\n" }.joined()
                            + "evil.example.org evil.example.org|127.0.0.1:22|0||0|nosuchgear|,\n")
        let result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: gear g1: \(hosts) gives shop-acme.example.com the record \(stale), its route document makes it \(good): "
                + "rebuild the maps from the documents: oo-admin-ctl-gears routes --repair \(node.optionText)",
            "FAIL: \(hosts) routes evil.example.org to gear nosuchgear, which is no gear of this node: "
                + "remove its line from \(hosts) (write the map anew and rename it over the old one: Apache re-reads it by itself)",
        ], "\(result.stdout)")
    }

    @Test("a gear home with the wrong mode is named with its mode and the chmod that fixes it")
    func wrongHomeMode() throws {
        let node = try AcceptSandbox()
        defer { node.destroy() }
        let home = node.gearBaseDir + "/g1"
        chmod(home, 0o777)
        let result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures == ["FAIL: gear g1: its home \(home) has mode 0777, not 0750: chmod 0750 \(home)"], "\(result.stdout)")
    }

    @Test("a gear another command is changing (its lock is held) is not judged")
    func busyGearIsSkipped() throws {
        let node = try AcceptSandbox()
        defer { node.destroy() }
        chmod(node.gearBaseDir + "/g1", 0o700)
        let lock = open(node.gearBaseDir + "/.locks/gear.g1", O_RDWR | O_CLOEXEC)
        #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
        let busy = try node.accept(["-v"])
        #expect(busy.status == 0 && busy.failures.isEmpty, "\(busy.stdout)")
        #expect(busy.stdout.contains("INFO: gear g1 is being changed by another command (its lock is held): not checked\n"))
        close(lock)
        #expect(try node.accept().failures.count == 1, "judged again once the lock is released")
    }

    @Test("a cartridge in CARTRIDGE_BASE_PATH that the repository lacks: no manifest in the cart repo matches it")
    func cartridgeMissingFromRepository() throws {
        let node = try AcceptSandbox(gear: false)
        defer { node.destroy() }
        try CartridgeBuilder(name: "extra", cartridgeVersion: "0.0.3").write(into: node.scratch.basePath)
        let result = try node.accept()
        #expect(result.status == 1)
        let manifest = node.scratch.basePath + "/extra/metadata/manifest.yml"
        #expect(result.failures == [
            "FAIL: no manifest in the cart repo matches \(manifest): (redhat, extra, 0.0.3) is not in \(node.repositoryDirectory): "
                + "install it: oo-admin-cartridge --action rescan \(node.optionText)",
        ], "\(result.stdout)")
        #expect(try node.run("oo-admin-cartridge", ["--action", "rescan"]).status == 0)
        #expect(try node.accept().stdout == "PASS\n", "the fix it names works")
    }

    @Test("repository entries that disagree with their source or their place: cart repo version mismatch")
    func repositoryVersionMismatch() throws {
        let node = try AcceptSandbox(gear: false)
        defer { node.destroy() }
        // The package changed its manifest; the repository still has the old one.
        let manifest = node.scratch.basePath + "/mock/metadata/manifest.yml"
        let original = TestFiles.read(manifest) ?? ""
        try TestFiles.write(manifest, original.replacingOccurrences(of: "Versions: ['0.1', '0.2', '0.3', '0.4']",
                                                                 with: "Versions: ['0.1', '0.2', '0.3', '0.4', '0.5']"))
        var result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: cart repo version mismatch for \(manifest): (redhat, mock, 0.0.1) changed since it was installed "
                + "(the repository has versions 0.1, 0.2, 0.3, 0.4, the source 0.1, 0.2, 0.3, 0.4, 0.5): install it again: oo-admin-cartridge --action rescan \(node.optionText)",
        ], "\(result.stdout)")

        // A repository directory whose manifest names another cartridge version.
        try TestFiles.write(manifest, original)
        let cartridge = node.repositoryDirectory + "/redhat-mock"
        #expect(rename(cartridge + "/0.0.1", cartridge + "/0.0.9") == 0)
        result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures.contains { line in
            line.hasPrefix("FAIL: cart repo version mismatch: \(cartridge)/0.0.9/metadata/manifest.yml describes (redhat, mock, 0.0.1), "
                           + "which belongs in redhat-mock/0.0.1, not redhat-mock/0.0.9: the node skips it: ")
        }, "\(result.stdout)")
        #expect(result.failures.contains { $0.hasPrefix("FAIL: no manifest in the cart repo matches \(manifest): ") })
    }

    @Test("an invalid node.conf is the only failure, with its file, line and reason")
    func invalidNodeConf() throws {
        let node = try AcceptSandbox(gear: false)
        defer { node.destroy() }
        let valid = TestFiles.read(node.config) ?? ""
        try TestFiles.write(node.config, "# a comment\nCLOUD_DOMAIN=example.com\nGEAR_MIN_UID=abc\n")
        var result = try node.accept()
        #expect(result.status == 1)
        #expect(result.stdout == "FAIL: \(node.config):3: GEAR_MIN_UID must be an integer from 1 to 4294967294 (a uid), found 'abc': "
                + "correct line 3 of \(node.config); `openshift-node config-sample` lists every key with its default and range\n")

        try TestFiles.write(node.config, valid + "just words\n")
        result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures.count == 1 && result.stdout.hasPrefix("FAIL: \(node.config):5: expected KEY=value: 'just words': correct line 5 of "),
                "\(result.stdout)")

        TestFiles.remove(node.config)
        result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures.count == 1 && result.stdout.hasPrefix("FAIL: configuration \(node.config) does not exist: "), "\(result.stdout)")
    }

    @Test("a missing GEAR_BASE_DIR and repository directory are each named with how to create them")
    func missingDirectories() throws {
        let node = try AcceptSandbox(gear: false)
        defer { node.destroy() }
        TestFiles.remove(node.gearBaseDir)
        let result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: GEAR_BASE_DIR (gear homes) \(node.gearBaseDir) does not exist: mkdir -p \(node.gearBaseDir)",
            "FAIL: CARTRIDGE_REPO_DIR (the cartridge repository) \(node.repositoryDirectory) does not exist: "
                + "create it and install CARTRIDGE_BASE_PATH into it: oo-admin-cartridge --action rescan \(node.optionText)",
        ], "\(result.stdout)")
        #expect(!TestFiles.exists(node.gearBaseDir), "the check created nothing")
    }

    @Test("an Apache configuration that does not parse, or does not read the node's maps",
          .enabled(if: access("/usr/sbin/apache2", X_OK) == 0 || Prerequisites.inCI))
    func apacheConfiguration() throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let node = try AcceptSandbox()
        defer { node.destroy() }
        let httpd = node.root + "/httpd.conf"
        let generated = TestFiles.read(httpd) ?? ""
        let prefix = generated.hasSuffix("\n") ? generated : generated + "\n"
        let line = prefix.filter { $0 == "\n" }.count + 1
        try TestFiles.write(httpd, prefix + "ProxyPreserveHost sometimes\n")
        var result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures.count == 1 && result.failures[0].hasPrefix(
            "FAIL: Apache configuration \(httpd) does not parse: AH00526: Syntax error on line \(line) of \(httpd): "), "\(result.stdout)")
        #expect(result.failures.first?.hasSuffix(": correct it, then test it with /usr/sbin/apache2 -t -f \(httpd)") == true)

        // Parses, but routes nothing of this node. Its two files: itself and the router's workers.conf.
        try TestFiles.write(httpd, generated.replacingOccurrences(of: node.mapDirectory + "/routes.txt", with: node.root + "/other-routes.txt"))
        try TestFiles.write(node.root + "/other-routes.txt", "")
        result = try node.accept(["--httpd-config", httpd])
        #expect(result.status == 1)
        #expect(result.failures.count == 1 && result.failures[0].hasPrefix(
            "FAIL: Apache configuration \(httpd) parses but does not route gears: none of its 2 file(s) reads \(node.mapDirectory)/routes.txt: "),
            "\(result.stdout)")
    }

    @Test("an unreachable MCollective broker is named with its address; a server.cfg that does not parse with its line")
    func unreachableBroker() throws {
        let node = try AcceptSandbox(gear: false)
        defer { node.destroy() }
        let port = HTTPProbe.freePort()   // nothing listens there
        try node.writeServerConfig(port: port)
        var result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: no MCollective broker of \(node.serverConfig) accepts a connection: 127.0.0.1:\(port) (Connection refused): "
                + "start the broker (ActiveMQ) or correct plugin.activemq.pool.N.host/port in \(node.serverConfig); check firewalls between the node and it",
        ], "\(result.stdout)")

        try TestFiles.write(node.serverConfig, (TestFiles.read(node.serverConfig) ?? "") + "plugin.activemq.pool.1.port = many\n")
        result = try node.accept()
        #expect(result.status == 1)
        #expect(result.failures.count == 1 && result.failures[0].hasPrefix(
            "FAIL: MCollective configuration \(node.serverConfig):12: plugin.activemq.pool.1.port must be a non-negative integer, not 'many': "),
            "\(result.stdout)")
    }

    @Test("--json for monitoring; the runs change nothing on disk")
    func jsonAndReadOnly() throws {
        let node = try AcceptSandbox()
        defer { node.destroy() }
        struct Report: Decodable {
            struct Item: Decodable {
                var check: String
                var message: String
                var fix: String
            }

            var status: String
            var failures: [Item]
            var warnings: [Item]
        }
        let healthy = try node.accept(["--json"])
        #expect(healthy.status == 0)
        let passed = try JSONDecoder().decode(Report.self, from: Data(healthy.stdout.utf8))
        #expect(passed.status == "PASS" && passed.failures.isEmpty && passed.warnings.isEmpty)
        #expect(healthy.stdout.split(separator: "\n").count == 1, "one JSON object on one line")

        // Two faults: a gear home left open, a broker that does not answer.
        chmod(node.gearBaseDir + "/g1", 0o755)
        try node.writeServerConfig(port: HTTPProbe.freePort())
        let before = node.tree()
        let failed = try node.accept(["--json"])
        _ = try node.accept(["-v"])
        _ = try node.accept()
        #expect(node.tree() == before, "oo-accept-node changed nothing in the node's tree")
        #expect(failed.status == 1)
        let report = try JSONDecoder().decode(Report.self, from: Data(failed.stdout.utf8))
        #expect(report.status == "FAIL")
        #expect(report.failures.map(\.check) == ["gears", "mcollective"])
        #expect(report.failures.first?.message == "gear g1: its home \(node.gearBaseDir)/g1 has mode 0755, not 0750")
        #expect(report.failures.first?.fix == "chmod 0750 \(node.gearBaseDir)/g1")
        #expect(report.failures.allSatisfy { !$0.message.isEmpty && !$0.fix.isEmpty })
    }
}

/// The same on real accounts: node mode, root, uids 48000...48099 (20 per test), the node's
/// files in a scratch directory and its own cgroup parent.
@Suite("oo-accept-node in node mode", .serialized,
       .enabled(if: Prerequisites.inCI || (Prerequisites.isRoot && access("/usr/sbin/apache2", X_OK) == 0)))
struct AcceptNodeModeTests {
    @Test("a healthy node prints PASS alone; nothing on disk changes", .timeLimit(.minutes(2)))
    func healthyNodePasses() async throws {
        let node = try await AcceptRealNode.start(index: 0)
        defer { node.destroy() }
        let gear = try await node.createGear("acc0a")
        let before = node.tree()
        let result = try await node.accept()
        #expect(result.status == 0 && result.stdout == "PASS\n", "\(result.stdout)")
        #expect(result.stderr == "")
        #expect(node.tree() == before, "oo-accept-node changed nothing in the node's tree")
        #expect(UnixAccounts.user(named: gear)?.uid == 48000)
    }

    @Test("a gear whose account was removed (userdel) is named with its uid", .timeLimit(.minutes(2)))
    func gearWithoutAccount() async throws {
        let node = try await AcceptRealNode.start(index: 1)
        defer { node.destroy() }
        let gear = try await node.createGear("acc1a")
        let removed = try await onThread { try ProcessRunner.run(["/usr/sbin/userdel", gear]) }
        #expect(removed.status == 0, "\(removed.stderr)")
        let result = try await node.accept()
        #expect(result.status == 1)
        #expect(result.failures.contains { $0.hasPrefix("FAIL: gear \(gear) (uid 48020) has no account \(gear): none of its processes can run") },
                "\(result.stdout)")
        #expect(result.failures.contains { $0.contains("useradd -u 48020 -g 48020 -d \(node.gearBaseDir)/\(gear) ") })
    }

    @Test("an account with the gear GECOS but no gear is an orphan; a stray home is named too", .timeLimit(.minutes(2)))
    func orphanAccount() async throws {
        let node = try await AcceptRealNode.start(index: 2)
        defer { node.destroy() }
        _ = try await node.createGear("acc2a")
        try await node.addAccount("acc2orphan", uid: 48055, home: node.gearBaseDir + "/acc2orphan")
        var result = try await node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: orphan account acc2orphan (uid 48055): it has the gear GECOS 'OpenShift guest' but no gear and no home "
                + "(\(node.gearBaseDir)/acc2orphan does not exist): remove it: userdel acc2orphan && groupdel acc2orphan",
        ], "\(result.stdout)")

        try TestFiles.makeDirectories(node.gearBaseDir + "/acc2orphan")
        result = try await node.accept()
        #expect(result.failures.count == 1 && result.failures[0].hasPrefix(
            "FAIL: account acc2orphan (uid 48055) has the gear GECOS 'OpenShift guest' and the home \(node.gearBaseDir)/acc2orphan, but no gear of this node is acc2orphan"),
            "\(result.stdout)")
    }

    @Test("node mode run by a user who is not root: one FAIL line saying so, nothing else checked", .timeLimit(.minutes(2)))
    func notRoot() async throws {
        let node = try await AcceptRealNode.start(index: 4)
        defer { node.destroy() }
        let argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ProcessRunner.executable("oo-accept-node"),
                    "--config", node.config]
        let result = try await onThread { try ProcessRunner.run(argv) }
        #expect(result.status == 1)
        #expect(result.stdout == "FAIL: node mode checks gear accounts, cgroups and root's gear records (\(node.gearBaseDir)/.gears is 0700), "
                + "and this user (uid 65534) is not root: run oo-accept-node as root, or give --root DIR to check a sandbox\n", "\(result.stdout)\(result.stderr)")
    }

    @Test("a gear home with the wrong owner and mode, and a missing cgroup", .timeLimit(.minutes(2)))
    func homeAndCgroup() async throws {
        let node = try await AcceptRealNode.start(index: 3)
        defer { node.destroy() }
        let gear = try await node.createGear("acc3a")
        let home = node.gearBaseDir + "/" + gear
        chown(home, 48060, 48060)
        chmod(home, 0o700)
        var result = try await node.accept()
        #expect(result.status == 1)
        #expect(result.failures == [
            "FAIL: gear \(gear): its home \(home) is owned by 48060:48060, not root:48060 (the gear may enter its home, never replace what root keeps there): "
                + "chown root:48060 \(home)",
            "FAIL: gear \(gear): its home \(home) has mode 0700, not 0750: chmod 0750 \(home)",
        ], "\(result.stdout)")
        chown(home, 0, 48060)
        chmod(home, 0o750)

        if let hierarchy = CgroupHierarchy.detect(), let cgroup = try? GearCgroup(hierarchy: hierarchy, parent: node.cgroupRoot, name: gear) {
            for directory in cgroup.directories { rmdir(directory) }
            result = try await node.accept()
            #expect(result.status == 1)
            #expect(result.failures.count == cgroup.directories.count)
            #expect(result.failures.allSatisfy { $0.hasPrefix("FAIL: gear \(gear): its cgroup /") && $0.contains("/\(node.cgroupRoot)/\(gear) does not exist") },
                    "\(result.stdout)")
        }
    }
}

// MARK: Nodes for the tests

/// The output of one run, with its FAIL lines.
struct AcceptResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var failures: [String] { stdout.split(separator: "\n").filter { $0.hasPrefix("FAIL: ") }.map(String.init) }
}

/// A TCP socket on 127.0.0.1 that listens and never accepts: a broker's port, as far as a
/// connection attempt can tell.
final class Listener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound else { throw TestFiles.Failure(description: "listen on 127.0.0.1: errno \(errno)") }
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }
}

/// Every path of a tree with its type, mode, owner, size and mtime: what a read-only command
/// must leave as it was.
func treeListing(_ root: String) -> [String] {
    var listing: [String] = []
    func visit(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        listing.append("\(path) \(String(st.st_mode, radix: 8)) \(st.st_uid):\(st.st_gid) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)")
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in FileSystem.entries(path) ?? [] { visit(path + "/" + name) }
        }
    }
    visit(root)
    return listing
}

/// A sandbox node: the mock cartridge in its own base path, installed; optionally a gear `g1`
/// (`shop-acme.example.com`) with mock configured; a standalone Apache configuration at
/// `<root>/httpd.conf` when Apache is installed.
final class AcceptSandbox {
    let scratch = ScratchNode("accept-sandbox")
    let root: String
    let config: String
    var options: [String] { ["--root", root, "--cartridge-base-path", scratch.basePath, "--config", config] }
    /// The options as fixes print them (in the command's own order).
    var optionText: String { "--root \(root) --config \(config) --cartridge-base-path \(scratch.basePath)" }
    var gearBaseDir: String { root + "/var/lib/openshift" }
    var repositoryDirectory: String { gearBaseDir + "/.cartridge_repository" }
    var mapDirectory: String { root + "/etc/apache2/conf.d/openshift" }
    var serverConfig: String { root + "/etc/mcollective/server.cfg" }
    init(gear: Bool = true) throws {
        root = scratch.root + "/sandbox"
        config = try sandboxConfig(scratch)
        let copy = try ProcessRunner.run(["/bin/cp", "-a", shippedCartridgesPath + "/mock", scratch.basePath + "/mock"])
        guard copy.status == 0 else { throw TestFiles.Failure(description: "cp: \(copy.stderr)") }
        try check(run("oo-admin-cartridge", ["--action", "rescan"]))
        guard gear else { return }
        try check(run("oo-devel-node", ["app-create", "--with-container-uuid", "g1", "--with-app-name", "shop", "--with-container-name", "shop",
                                        "--with-namespace", "acme"]))
        try check(run("oo-devel-node", ["configure", "--with-container-uuid", "g1", "--cart-name", "mock"]))
        if access("/usr/sbin/apache2", X_OK) == 0 {
            try TestFiles.makeDirectories(root + "/var/lib/openshift/.httpd")
            let apache = try run("openshift-node", ["apache-config", "--standalone", "\(HTTPProbe.freePort())",
                                                    "--server-root", root + "/var/lib/openshift/.httpd"])
            try check(apache)
            try TestFiles.write(root + "/httpd.conf", apache.stdout)
        }
    }

    func run(_ tool: String, _ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.node(tool, arguments + options)
    }

    private func check(_ result: ProcessRunner.Result) throws {
        guard result.status == 0 else { throw TestFiles.Failure(description: "setup failed: \(result.stderr)") }
    }

    func accept(_ arguments: [String] = []) throws -> AcceptResult {
        let result = try run("oo-accept-node", arguments)
        return AcceptResult(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// An MCollective server.cfg whose one broker is 127.0.0.1:`port`.
    func writeServerConfig(port: UInt16) throws {
        try TestFiles.write(serverConfig, MCollectiveConfig.text(identity: "node1.test", port: Int(port), psk: "secret"))
    }

    func tree() -> [String] { treeListing(scratch.root) }

    func destroy() { scratch.destroy() }
}

/// A node-mode node (root, real accounts) in a scratch directory: uids
/// `48000 + 20 * index ... + 19`, its own cgroup parent, the mock cartridge installed, an Apache
/// configuration that reads its maps.
final class AcceptRealNode: @unchecked Sendable {
    let scratch = ScratchNode("accept-node")
    let config: String
    let httpd: String
    let cgroupRoot: String
    var gearBaseDir: String { scratch.root + "/gears" }
    private var accounts: [String] = []

    static func start(index: Int) async throws -> AcceptRealNode {
        try #require(Prerequisites.isRoot, "\(Prerequisites.rootProblem ?? "")")
        return try await onThread { try AcceptRealNode(index: index) }
    }

    private init(index: Int) throws {
        chmod(scratch.root, 0o755)
        let low = 48000 + 20 * index
        cgroupRoot = "openshift-node-accept-\(index)"
        config = scratch.root + "/node.conf"
        httpd = scratch.root + "/httpd.conf"
        try TestFiles.write(config, """
            GEAR_BASE_DIR=\(scratch.root)/gears
            CARTRIDGE_REPO_DIR=\(scratch.root)/repository
            CARTRIDGE_BASE_PATH=\(scratch.basePath)
            GEAR_MIN_UID=\(low)
            GEAR_MAX_UID=\(low + 19)
            GEAR_SHELL=/bin/sh
            OPENSHIFT_CGROUP_ROOT=\(cgroupRoot)
            OPENSHIFT_HTTP_CONF_DIR=\(scratch.root)/httpd
            LAST_ACCESS_DIR=\(scratch.root)/last_access
            AGENT_SOCKET=\(scratch.root)/agent.sock
            AGENT_TRANSPORTS=local
            FRONTEND_WAKE_PORT=0

            """)
        let copy = try ProcessRunner.run(["/bin/cp", "-a", shippedCartridgesPath + "/mock", scratch.basePath + "/mock"])
        guard copy.status == 0 else { throw TestFiles.Failure(description: "cp: \(copy.stderr)") }
        let rescan = try ProcessRunner.node("oo-admin-cartridge", ["--action", "rescan", "--config", config])
        guard rescan.status == 0 else { throw TestFiles.Failure(description: "rescan: \(rescan.stderr)") }
        // Apache's run files in the scratch directory instead of /var/lib/openshift/.httpd.
        let apache = try ProcessRunner.node("openshift-node", ["apache-config", "--standalone", "\(HTTPProbe.freePort())",
                                                               "--server-root", scratch.root + "/apache", "--config", config])
        guard apache.status == 0 else { throw TestFiles.Failure(description: "apache-config: \(apache.stderr)") }
        try TestFiles.write(httpd, apache.stdout)
    }

    func devel(_ arguments: [String]) async throws -> ProcessRunner.Result {
        let config = config
        return try await onThread { try ProcessRunner.node("oo-devel-node", arguments + ["--config", config]) }
    }

    /// A gear with mock configured; its uuid.
    func createGear(_ uuid: String) async throws -> String {
        let created = try await devel(["app-create", "--with-container-uuid", uuid, "--with-namespace", "acme"])
        guard created.status == 0 else { throw TestFiles.Failure(description: "app-create: \(created.stderr)") }
        let configured = try await devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"])
        guard configured.status == 0 else { throw TestFiles.Failure(description: "configure: \(configured.stderr)") }
        return uuid
    }

    /// An account made by hand with the gear GECOS and its own group (removed by `destroy`).
    func addAccount(_ name: String, uid: Int, home: String) async throws {
        accounts.append(name)
        let result = try await onThread {
            let group = try ProcessRunner.run(["/usr/sbin/groupadd", "-g", "\(uid)", name])
            guard group.status == 0 else { return group }
            return try ProcessRunner.run(["/usr/sbin/useradd", "-u", "\(uid)", "-g", "\(uid)", "-d", home, "-M", "-N", "-s", "/bin/sh",
                                          "-c", "OpenShift guest", name])
        }
        guard result.status == 0 else { throw TestFiles.Failure(description: "useradd \(name): \(result.stderr)") }
    }

    func accept(_ arguments: [String] = []) async throws -> AcceptResult {
        let argv = arguments + ["--config", config, "--httpd-config", httpd]
        let result = try await onThread { try ProcessRunner.node("oo-accept-node", argv) }
        return AcceptResult(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    func tree() -> [String] { treeListing(scratch.root) }

    /// Destroys the gears, removes the accounts the test made and the cgroup parent, then the files.
    func destroy() {
        for uuid in TestFiles.list(gearBaseDir + "/.gears").filter({ $0.hasSuffix(".json") }).map({ String($0.dropLast(5)) }) {
            _ = try? ProcessRunner.node("oo-devel-node", ["app-destroy", "--with-container-uuid", uuid, "--config", config])
        }
        for name in accounts {
            _ = try? ProcessRunner.run(["/usr/sbin/userdel", name])
            _ = try? ProcessRunner.run(["/usr/sbin/groupdel", name])
        }
        if let hierarchy = CgroupHierarchy.detect(), let parent = try? GearCgroup(hierarchy: hierarchy, parent: "", name: cgroupRoot) {
            for directory in parent.directories { rmdir(directory) }
        }
        scratch.destroy()
    }
}
