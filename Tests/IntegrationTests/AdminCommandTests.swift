import Foundation
import NodeTestSupport
import Testing

/// `oo-admin-cartridge` and `oo-cartridge` as an admin runs them, in sandbox mode.
@Suite("admin commands")
struct AdminCommandTests {
    let node = ScratchNode("admin-test")
    var root: String { node.root + "/sandbox" }
    var sandbox: [String] { ["--root", root, "--cartridge-base-path", node.basePath] }

    func admin(_ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.node("oo-admin-cartridge", arguments + sandbox)
    }

    @Test("install, list in the original's format, erase")
    func installListErase() throws {
        defer { node.destroy() }
        let source = try CartridgeBuilder(name: "php", versions: ["5.3", "5.4"], cartridgeVersion: "0.0.28").write(into: node.root + "/src")
        let install = try admin(["--action", "install", "--source", source])
        #expect(install.status == 0 && install.stdout == "Succeeded\n", "\(install.stderr)")
        let list = try admin(["--list"])
        #expect(list.stdout == "(redhat, php, 5.3, 0.0.28)\n(redhat, php, 5.4, 0.0.28)\n")
        #expect(try listing(root: root, basePath: node.basePath) == list.stdout, "oo-cartridge list prints the same")
        let erase = try admin(["-a", "erase", "-n", "php", "-v", "5.4", "-c", "0.0.28"])
        #expect(erase.status == 0 && erase.stdout == "Succeeded\n")
        #expect(try admin(["--list"]).stdout == "")
    }

    @Test("errors are one line on stderr with a non-zero exit, and change nothing")
    func errors() throws {
        defer { node.destroy() }
        let missing = try admin(["-a", "erase", "-n", "php", "-v", "5.4", "-c", "0.0.28"])
        #expect(missing.status == 3)
        #expect(missing.stderr == "Requested cartridge does not exist: (key not found: (redhat, php, 5.4, 0.0.28))\n")
        let hostile = try admin(["-a", "erase", "-n", "../../etc", "-v", "5.4", "-c", "0.0.28"])
        #expect(hostile.status == 2 && hostile.stderr.hasPrefix("Couldn't erase cartridge: (invalid name '../../etc'"))
        #expect(hostile.stderr.split(separator: "\n").count == 1)
        let usage = try admin(["-a", "install"])
        #expect(usage.status != 0 && usage.stderr == "oo-admin-cartridge: Missing arguments: --source\n")
        let noAction = try admin([])
        #expect(noAction.status != 0 && noAction.stderr.split(separator: "\n").count == 1)
        try TestFiles.write(node.root + "/node.conf", "GEAR_BASE_DIR=/srv/gears\nCARTRIDGE_WATCH=perhaps\n")
        let badConfig = try admin(["--list", "--config", node.root + "/node.conf"])
        #expect(badConfig.status == 2)
        #expect(badConfig.stderr == "\(node.root)/node.conf:2: CARTRIDGE_WATCH must be a boolean (true/false, yes/no, 1/0), found 'perhaps'\n")
        let help = try admin(["--help"])
        #expect(help.status == 0 && help.stdout.contains("--cartridge_version"))
    }

    @Test("installing an alias bomb or 100,000 nested brackets fails at once with the limit and the line",
          .timeLimit(.minutes(3)))
    func hostileManifests() throws {
        defer { node.destroy() }
        for (name, yaml, reason) in [("bomb", HostileYAML.aliasBomb, "YAML document of more than 100000 nodes with its aliases expanded at line 6"),
                                     ("deep", HostileYAML.deepFlow, "YAML nesting deeper than 64 levels at line 1")] {
            let source = node.root + "/src/" + name
            try TestFiles.write(source + "/metadata/manifest.yml", yaml)
            try TestFiles.write(source + "/bin/control", "#!/bin/sh\n", mode: 0o755)
            // A heap limit, so that a regression fails here instead of exhausting the host.
            let limit = access("/usr/bin/prlimit", X_OK) == 0 ? ["/usr/bin/prlimit", "--data=\(1 << 30)"] : []
            let result = try ProcessRunner.run(limit + [ProcessRunner.executable("oo-admin-cartridge"), "-a", "install", "-s", source] + sandbox)
            #expect(result.status != 0 && result.status < 128, "refused, not killed: \(result.status)")
            #expect(result.stderr.contains("\(source)/metadata/manifest.yml: \(reason)"), "\(result.stderr)")
        }
        #expect(try admin(["--list"]).stdout == "", "nothing was installed")
    }

    @Test("recursive install: one broken cartridge is reported, the others are installed")
    func recursiveInstall() throws {
        defer { node.destroy() }
        let dir = node.root + "/many"
        try CartridgeBuilder(name: "alpha").write(into: dir)
        try CartridgeBuilder(name: "beta", versions: ["1.9", "1.10"]).write(into: dir)
        var broken = CartridgeBuilder(name: "gamma")
        broken.extraManifest = "Version: 1.x\n"
        try broken.write(into: dir)
        let result = try admin(["-a", "install", "-R", "-s", dir])
        #expect(result.status == 1)
        #expect(result.stderr.contains("Installation failed for \(dir)/gamma: \(dir)/gamma/metadata/manifest.yml: Version '1.x' is not a valid version"))
        #expect(result.stderr.contains("Operation failed: some cartridges cannot be installed"))
        #expect(try admin(["--list"]).stdout == """
            (redhat, alpha, 0.1, 0.0.1)
            (redhat, beta, 1.9, 0.0.1)
            (redhat, beta, 1.10, 0.0.1)

            """)
        let empty = try admin(["-a", "install", "-R", "-s", node.root + "/nothing-here"])
        #expect(empty.status == 1 && empty.stderr.contains("Operation failed: no cartridges were found."))
    }

    @Test("JSON listing: default and shipped flags; a version no longer shipped stays, marked")
    func jsonListing() throws {
        defer { node.destroy() }
        try CartridgeBuilder(name: "mock", cartridgeVersion: "0.0.1").write(into: node.basePath)
        try CartridgeBuilder(name: "mock", cartridgeVersion: "0.0.2").write(into: node.root + "/src")
        #expect(try admin(["-a", "rescan"]).status == 0)
        #expect(try admin(["-a", "install", "-s", node.root + "/src/mock"]).status == 0)
        struct Entry: Decodable, Equatable {
            var name: String
            var version: String
            var cartridge_version: String
            var `default`: Bool
            var shipped: Bool
        }
        func entries() throws -> [Entry] {
            let result = try ProcessRunner.node("oo-cartridge", ["list", "--json"] + sandbox)
            return try JSONDecoder().decode([Entry].self, from: Data(result.stdout.utf8))
        }
        #expect(try entries() == [
            Entry(name: "mock", version: "0.1", cartridge_version: "0.0.1", default: false, shipped: true),
            Entry(name: "mock", version: "0.1", cartridge_version: "0.0.2", default: true, shipped: false),
        ])
        TestFiles.remove(node.basePath + "/mock")
        #expect(try admin(["-a", "rescan"]).status == 0)
        #expect(try entries().map(\.shipped) == [false, false])
        let erase = try admin(["-a", "erase", "-n", "mock", "-v", "0.1", "-c", "0.0.1"])
        #expect(erase.status == 0, "no longer shipped, so no longer protected: \(erase.stderr)")
    }

    @Test("concurrent installs from two processes leave a consistent repository", .timeLimit(.minutes(2)))
    func concurrentInstalls() throws {
        defer { node.destroy() }
        for i in 0..<12 {
            var builder = CartridgeBuilder(name: "c\(i)", versions: ["1.0", "2.0"])
            builder.files["usr/data"] = String(repeating: "payload \(i)\n", count: 2000)
            try builder.write(into: node.root + "/set-a")
            builder.files["usr/data"] = String(repeating: "other \(i)\n", count: 2000)
            try builder.write(into: node.root + "/set-b")
        }
        for round in 0..<3 {
            let pids = try ["a", "b"].map { set in
                try ProcessRunner.spawn(
                    [ProcessRunner.executable("oo-admin-cartridge"), "-a", "install", "-R", "-s", node.root + "/set-\(set)"] + sandbox,
                    stdout: node.root + "/out-\(set)-\(round)", stderr: node.root + "/err-\(set)-\(round)")
            }
            for pid in pids { #expect(ProcessRunner.wait(pid) == 0) }
        }
        let list = try admin(["--list"])
        #expect(list.stderr == "", "no skipped or broken entries")
        #expect(list.stdout.split(separator: "\n").count == 24)
        let repository = root + "/var/lib/openshift/.cartridge_repository"
        for i in 0..<12 {
            let entries = TestFiles.list(repository + "/redhat-c\(i)", includeHidden: true)
            #expect(entries == [".0.0.1.source", "0.0.1"], "no staging leftovers for c\(i): \(entries)")
            let data = TestFiles.read(repository + "/redhat-c\(i)/0.0.1/usr/data") ?? ""
            #expect(data == String(repeating: "payload \(i)\n", count: 2000) || data == String(repeating: "other \(i)\n", count: 2000),
                    "each version is one whole copy, never a mix")
        }
    }
}
